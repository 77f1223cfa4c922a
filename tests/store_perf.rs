//! Throughput of `apply` + `flush` at 100k jobs. Ignored by default (it
//! measures, it does not check); run it in release:
//!
//! ```text
//! cargo test --release --test store_perf -- --ignored --nocapture
//! ```

mod store_support;

use cronactor::store::{SledStore, SledStoreOptions};
use cronactor_actors::{JobState, SnapshotStore, StoreOp};
use std::time::Instant;
use store_support::{id, put_job, run, state};

const JOBS: usize = 100_000;

/// The CPU time of the whole process (every thread, sled's included).
fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Applies `ops` and flushes: (apply wall time, apply+flush wall time,
/// process CPU time), in seconds.
fn measure(store: &SledStore, ops: Vec<StoreOp>) -> (f64, f64, f64) {
    let cpu = cpu_seconds();
    let start = Instant::now();
    store.apply(ops).expect("apply");
    let applied = start.elapsed();
    futures::executor::block_on(store.flush()).expect("flush");
    let total = start.elapsed();
    (
        applied.as_secs_f64(),
        total.as_secs_f64(),
        cpu_seconds() - cpu,
    )
}

/// Folds the journal into the trees: (wall time, process CPU time).
fn fold(store: &SledStore) -> (f64, f64) {
    let cpu = cpu_seconds();
    let start = Instant::now();
    store.fold().expect("fold");
    (start.elapsed().as_secs_f64(), cpu_seconds() - cpu)
}

#[test]
#[ignore = "a measurement; run in release with --ignored --nocapture"]
fn apply_and_flush_throughput_100k_jobs() {
    // Encode + decode of a typical JobState, JSON.
    let typical = state(12_345);
    let rounds = 100_000;
    let start = Instant::now();
    let mut bytes = 0;
    for _ in 0..rounds {
        let encoded = postcard::to_allocvec(&typical).expect("encode");
        bytes = encoded.len();
        let decoded: JobState = postcard::from_bytes(&encoded).expect("decode");
        assert_eq!(decoded.counters.runs, typical.counters.runs);
    }
    let per = start.elapsed().as_secs_f64() / f64::from(rounds) * 1e6;
    println!("typical JobState: {bytes} bytes of postcard, encode+decode {per:.2} us");

    for sync in [true, false] {
        let dir = tempfile::tempdir().expect("temp dir");
        let store =
            SledStore::open_with(dir.path(), SledStoreOptions::default().sync_on_flush(sync))
                .expect("open");
        let names: Vec<String> = (0..JOBS).map(|i| format!("job-{i:06}")).collect();
        let ops = names
            .iter()
            .map(|n| put_job(n, JobState::default()))
            .collect();
        let (a, t, c) = measure(&store, ops);
        println!(
            "sync_on_flush={sync}: PutJob x{JOBS}: apply {a:.3}s, apply+flush {t:.3}s, cpu {c:.3}s"
        );

        for round in 1..=3u64 {
            let ops = names
                .iter()
                .map(|n| StoreOp::PutState(id(n), Box::new(state(round))))
                .collect();
            let (a, t, c) = measure(&store, ops);
            println!(
                "sync_on_flush={sync}: PutState x{JOBS} round {round}: apply {a:.3}s, apply+flush {t:.3}s, cpu {c:.3}s = {:.0} ops/s",
                JOBS as f64 / t
            );
        }
        let (f, fc) = fold(&store);
        println!(
            "sync_on_flush={sync}: fold of rounds 1-3 (one state per job): {f:.3}s, cpu {fc:.3}s"
        );
        for round in 4..=6u64 {
            let mut ops = Vec::with_capacity(2 * JOBS);
            for n in &names {
                ops.push(StoreOp::PutState(id(n), Box::new(state(round))));
                ops.push(StoreOp::AppendHistory {
                    id: id(n),
                    record: Box::new(run(round)),
                    keep: 2,
                });
            }
            let (a, t, c) = measure(&store, ops);
            println!(
                "sync_on_flush={sync}: PutState+AppendHistory(keep 2) x{JOBS} round {round}: apply {a:.3}s, apply+flush {t:.3}s, cpu {c:.3}s = {:.0} jobs/s",
                JOBS as f64 / t
            );
            let (f, fc) = fold(&store);
            println!("sync_on_flush={sync}: fold of round {round} (a state and a history chunk per job, the oldest chunk deleted): {f:.3}s, cpu {fc:.3}s");
        }
        // Control-operation latency: one small apply and one flush each.
        let start = Instant::now();
        for round in 0..100u64 {
            let ops = vec![StoreOp::PutState(id(&names[0]), Box::new(state(round)))];
            store.apply(ops).expect("apply");
            futures::executor::block_on(store.flush()).expect("flush");
        }
        println!(
            "sync_on_flush={sync}: one PutState + flush, 100 times: {:.2} ms each",
            start.elapsed().as_secs_f64() * 10.0
        );

        let start = Instant::now();
        let loaded = store.load().expect("load");
        println!(
            "load of {} jobs: {:.3}s",
            loaded.jobs.len(),
            start.elapsed().as_secs_f64()
        );
    }
}
