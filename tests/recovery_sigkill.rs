//! Crash recovery with a real process killed by SIGKILL.
//!
//! The test re-executes its own binary as a child service (the ignored test
//! `child_service`, selected by an environment variable): a scheduler on a
//! sled store with 100 jobs firing every second and a stream of control
//! operations on other jobs, each logged before it is sent (`try`) and after
//! it is acknowledged (`ack`). The parent kills the child with SIGKILL at
//! random instants (every other one in the first 30 ms of a wall-clock
//! second, where runs start and the next claims are written), 20 times,
//! restarting it each time, and checks on every boot that:
//! - the store opens;
//! - every acknowledged add, remove, pause and resume held (an operation that
//!   was sent but not acknowledged may or may not have taken effect);
//! - no job was lost;
//! - no run started by the schedule was lost from the counters: the runs the
//!   store counts are at least the runs the handler had executed, since a
//!   run starts only after its fire's record is durable.
//!
//! At the end it checks, from the starts every incarnation's handler wrote
//! (job, scheduled instant, trigger), that no slot of a base job was started
//! twice by the schedule (on time or as a catch-up) across all the kills: a
//! slot in flight at a kill may run again only as a recovery of the
//! interrupted run.
//!
//! A second test runs each control operation (add, upsert, pause, resume,
//! trigger, cancel, retry_run, emit, a fire answered `Queued`, cancel of a
//! running run, remove, add again, a bulk pause and a bulk resume of 300
//! jobs by tag) in a child that kills itself the instant the operation
//! returns `Ok`, and checks the store holds it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BASE_JOBS: usize = 100;
const CONTROL_JOBS: usize = 8;
const KILLS: usize = 20;
const ENV_DIR: &str = "CRONACTOR_CRASH_TEST_DIR";

fn log_path(dir: &Path, incarnation: usize) -> PathBuf {
    dir.join(format!("log-{incarnation}.txt"))
}

fn starts_path(dir: &Path, incarnation: usize) -> PathBuf {
    dir.join(format!("starts-{incarnation}.txt"))
}

/// Every (job, scheduled instant in ms) that the schedule started more than
/// once, by the starts the handlers wrote in all incarnations.
fn slots_started_twice(dir: &Path) -> (usize, Vec<(String, i64)>) {
    let mut seen: BTreeMap<(String, i64), usize> = BTreeMap::new();
    for incarnation in 0..=KILLS {
        let Ok(text) = std::fs::read_to_string(starts_path(dir, incarnation)) else {
            continue;
        };
        for line in text.lines() {
            // A line cut by the kill has fewer fields.
            if let [job, ms, trigger] = line.split_whitespace().collect::<Vec<_>>()[..] {
                if trigger == "Schedule" || trigger == "CatchUp" {
                    let key = (job.to_string(), ms.parse().expect("number"));
                    *seen.entry(key).or_default() += 1;
                }
            }
        }
    }
    let twice = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(k, _)| k.clone())
        .collect();
    (seen.len(), twice)
}

/// The parent: start, kill, restart, check.
#[test]
fn acknowledged_operations_survive_twenty_sigkills() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = dir.path().join("store");
    let mut expected = Expectation::default();
    let mut executed_before_kill = 0u64;
    let mut rng_state = 0x2545_f491_4f6c_dd1du64;
    for incarnation in 0..=KILLS {
        let mut child = KillOnDrop(spawn_child(dir.path(), &store, incarnation));
        let log = log_path(dir.path(), incarnation);
        let boot = wait_for_boot(&log, &mut child.0);
        // Checks on what the store held at boot. The base jobs were all
        // acknowledged before the previous incarnation said it was ready.
        for i in 0..BASE_JOBS {
            assert!(
                incarnation == 0 || boot.jobs.contains_key(&format!("base-{i}")),
                "incarnation {incarnation}: base job {i} was lost"
            );
        }
        expected.check(&boot, incarnation);
        assert!(
            boot.base_runs >= executed_before_kill,
            "incarnation {incarnation}: the store counts {} runs but {} had executed",
            boot.base_runs,
            executed_before_kill
        );
        if incarnation == KILLS {
            break;
        }
        // Let it run for a random while, then kill it.
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        let millis = 300 + rng_state % 1200;
        std::thread::sleep(Duration::from_millis(millis));
        if incarnation % 2 == 1 {
            // Every other kill lands in the first 30 ms of a second, where
            // the jobs' runs start and their next claims are written.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock after 1970");
            let to_next = 1_000 - u64::from(now.subsec_millis());
            std::thread::sleep(Duration::from_millis(to_next + rng_state % 30));
        }
        // SAFETY: plain FFI call on our own child's pid.
        let rc = unsafe { libc::kill(child.0.id() as i32, libc::SIGKILL) };
        assert_eq!(rc, 0, "kill failed");
        let _ = child.0.wait();
        let run = read_log(&log);
        expected.apply(&run.ops);
        executed_before_kill = run.executed;
    }
    assert!(
        expected.acked > 20,
        "too few acknowledged operations: {}",
        expected.acked
    );
    let (slots, twice) = slots_started_twice(dir.path());
    assert!(slots > 300, "too few slots started: {slots}");
    assert!(
        twice.is_empty(),
        "{} of {slots} slots started twice by the schedule: {:?}",
        twice.len(),
        &twice[..twice.len().min(10)]
    );
}

/// Kills the child when the test ends, passing or failing.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_child(dir: &Path, store: &Path, incarnation: usize) -> Child {
    Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "child_service",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV_DIR, dir)
        .env("CRONACTOR_CRASH_STORE", store)
        .env("CRONACTOR_CRASH_INCARNATION", incarnation.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child")
}

/// What the child saw in the store when it booted.
#[derive(Default, Debug)]
struct Boot {
    /// Job id → paused.
    jobs: BTreeMap<String, bool>,
    /// Runs counted by the store for the base jobs.
    base_runs: u64,
}

/// One control operation in the log.
#[derive(Debug, Clone)]
enum Op {
    Try(String, String),
    Ack(String, String),
}

struct RunLog {
    ops: Vec<Op>,
    executed: u64,
}

fn wait_for_boot(log: &Path, child: &mut Child) -> Boot {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(log) {
            if text.lines().any(|l| l == "ready") {
                let mut boot = Boot::default();
                for line in text.lines() {
                    let parts: Vec<&str> = line.split_whitespace().collect();
                    match parts.as_slice() {
                        ["job", id, paused] => {
                            boot.jobs.insert((*id).to_string(), *paused == "paused");
                        }
                        ["base-runs", n] => boot.base_runs = n.parse().expect("number"),
                        _ => {}
                    }
                }
                return boot;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("child exited before it was ready: {status}; the store may not open");
        }
        assert!(Instant::now() < deadline, "child did not boot in time");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn read_log(log: &Path) -> RunLog {
    let text = std::fs::read_to_string(log).expect("log");
    let mut out = RunLog {
        ops: Vec::new(),
        executed: 0,
    };
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            ["try", op, id] => out.ops.push(Op::Try((*op).into(), (*id).into())),
            ["ack", op, id] => out.ops.push(Op::Ack((*op).into(), (*id).into())),
            ["executed", n] => out.executed = n.parse().expect("number"),
            _ => {}
        }
    }
    out
}

/// The state of each control job implied by the acknowledged operations;
/// an operation sent but not acknowledged when the child died may or may not
/// have taken effect.
#[derive(Default)]
struct Expectation {
    /// Control job → its state after the last acknowledged operation.
    definite: BTreeMap<String, State>,
    /// Control job → an operation sent and not acknowledged.
    pending: BTreeMap<String, String>,
    acked: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum State {
    Absent,
    Running,
    Paused,
}

fn after(op: &str) -> State {
    match op {
        "add" | "resume" => State::Running,
        "remove" => State::Absent,
        "pause" => State::Paused,
        other => panic!("unknown op {other}"),
    }
}

impl Expectation {
    fn apply(&mut self, ops: &[Op]) {
        for op in ops {
            match op {
                Op::Try(name, id) => {
                    self.pending.insert(id.clone(), name.clone());
                }
                Op::Ack(name, id) => {
                    self.acked += 1;
                    self.pending.remove(id);
                    self.definite.insert(id.clone(), after(name));
                }
            }
        }
    }

    fn allowed(&self, id: &str) -> BTreeSet<State> {
        let mut allowed = BTreeSet::from([*self.definite.get(id).unwrap_or(&State::Absent)]);
        if let Some(op) = self.pending.get(id) {
            allowed.insert(after(op));
        }
        allowed
    }

    /// Checks the boot against the expectation, then takes the boot's state
    /// as the new definite state (the child continues from it).
    fn check(&mut self, boot: &Boot, incarnation: usize) {
        let found = |id: &str| match boot.jobs.get(id) {
            None => State::Absent,
            Some(true) => State::Paused,
            Some(false) => State::Running,
        };
        let ids: BTreeSet<String> = self
            .definite
            .keys()
            .chain(self.pending.keys())
            .cloned()
            .chain(boot.jobs.keys().filter(|k| k.starts_with("ctl-")).cloned())
            .collect();
        for id in ids {
            let allowed = self.allowed(&id);
            let state = found(&id);
            assert!(
                allowed.contains(&state),
                "incarnation {incarnation}: control job {id} is {state:?}, allowed {allowed:?}"
            );
            self.definite.insert(id, state);
        }
        self.pending.clear();
    }
}

/// The child service. Ignored unless run by the parent test.
#[test]
#[ignore = "run by acknowledged_operations_survive_twenty_sigkills"]
fn child_service() {
    let Ok(dir) = std::env::var(ENV_DIR) else {
        return;
    };
    // Die with the parent test, however it ends.
    // SAFETY: plain FFI call with constant arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let store = std::env::var("CRONACTOR_CRASH_STORE").expect("store path");
    let incarnation: usize = std::env::var("CRONACTOR_CRASH_INCARNATION")
        .expect("incarnation")
        .parse()
        .expect("number");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(child_main(
        PathBuf::from(dir),
        PathBuf::from(store),
        incarnation,
    ));
}

async fn child_main(dir: PathBuf, store: PathBuf, incarnation: usize) {
    use cronactor::{JobContext, JobSpec, ScheduleSpec, Scheduler};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    let executed = Arc::new(AtomicU64::new(0));
    let counter = executed.clone();
    // Each start of a base job, one append each (the kernel keeps what was
    // written when the process is killed).
    let starts = Arc::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(starts_path(&dir, incarnation))
            .expect("starts file"),
    );
    let scheduler = Scheduler::builder()
        .handler("tick", move |ctx: JobContext| {
            let (counter, starts) = (counter.clone(), starts.clone());
            async move {
                if ctx.job_id.as_str().starts_with("base-") {
                    let line = format!(
                        "{} {} {:?}\n",
                        ctx.job_id,
                        ctx.scheduled.timestamp_millis(),
                        ctx.trigger
                    );
                    (&*starts).write_all(line.as_bytes())?;
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                Ok::<(), std::io::Error>(())
            }
        })
        .store_path(&store)
        .start()
        .await
        .expect("the store opens after a SIGKILL");
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path(&dir, incarnation))
        .expect("log file");
    let mut write = |line: String| {
        log.write_all(format!("{line}\n").as_bytes())
            .and_then(|()| log.flush())
            .expect("log write");
    };
    // What the store held at boot.
    let all = scheduler.list().await.expect("list");
    let mut base_runs = 0;
    for st in &all {
        let paused = st.phase == cronactor::JobPhase::Paused;
        write(format!(
            "job {} {}",
            st.id,
            if paused { "paused" } else { "running" }
        ));
        if st.id.as_str().starts_with("base-") {
            base_runs += st.counters.runs;
        }
    }
    write(format!("base-runs {base_runs}"));
    for i in 0..BASE_JOBS {
        let spec = JobSpec::builder(
            format!("base-{i}"),
            ScheduleSpec::cron("* * * * * *"),
            "tick",
        )
        .build()
        .expect("spec");
        scheduler.upsert(spec).await.expect("upsert");
    }
    write("ready".into());
    // Control operations, forever (until killed).
    let mut present: BTreeMap<String, bool> = all
        .iter()
        .filter(|s| s.id.as_str().starts_with("ctl-"))
        .map(|s| (s.id.to_string(), s.phase == cronactor::JobPhase::Paused))
        .collect();
    let mut step = incarnation as u64 * 7919;
    let mut last_report = Instant::now();
    loop {
        step += 1;
        let id = format!("ctl-{}", step % CONTROL_JOBS as u64);
        let op = match present.get(&id) {
            None => "add",
            Some(true) => ["resume", "remove"][(step / 8 % 2) as usize],
            Some(false) => ["pause", "remove"][(step / 8 % 2) as usize],
        };
        write(format!("try {op} {id}"));
        let result = match op {
            "add" => {
                let spec =
                    JobSpec::builder(id.as_str(), ScheduleSpec::cron("*/2 * * * * *"), "tick")
                        .build()
                        .expect("spec");
                scheduler.add(spec).await
            }
            "remove" => scheduler.remove(&id).await,
            "pause" => scheduler.pause(&id, Some("crash test")).await,
            _ => scheduler.resume(&id, None).await,
        };
        result.unwrap_or_else(|e| panic!("{op} {id}: {e}"));
        write(format!("ack {op} {id}"));
        match op {
            "add" | "resume" => {
                present.insert(id, false);
            }
            "pause" => {
                present.insert(id, true);
            }
            _ => {
                present.remove(&id);
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        if last_report.elapsed() > Duration::from_millis(20) {
            write(format!("executed {}", executed.load(Ordering::SeqCst)));
            last_report = Instant::now();
        }
    }
}

/// The control operations of `Scheduler`, each in its own child process
/// that kills itself with SIGKILL the instant the operation returns `Ok`;
/// the parent then opens the store and checks that the operation held. The
/// same job goes through add, upsert, pause, resume, trigger (its run must
/// be found in flight), pause, remove and add again (the new spec with a
/// fresh state comes back, not the old one); a second job has a retry
/// waiting when `cancel` drops it, then a failed run retried by
/// `retry_run`; a third fires on `emit`. A fourth has a run in flight when
/// an event is answered `Queued`: the queued fire, payload included, is in
/// the stored state, and the next process runs it after the interrupted
/// run's retry. A fifth has a run that ignores its token when `cancel`
/// answers: the run is stored as cancelled. A sixth has two such runs when
/// `cancel_run` answers for one: that one alone is stored as cancelled. A
/// job added paused is stored paused, with its note.
#[test]
fn each_control_operation_holds_when_the_process_is_killed_right_after_its_ok() {
    use cronactor::store::SledStore;
    use cronactor_actors::{JobRecord, SnapshotStore};

    let dir = tempfile::tempdir().expect("temp dir");
    let store = dir.path().join("store");
    let out = dir.path().join("answer.txt");
    let job = |loaded: &cronactor_actors::Loaded, id: &str| -> Option<JobRecord> {
        loaded
            .jobs
            .iter()
            .find(|j| j.spec.id.as_str() == id)
            .cloned()
    };
    for op in [
        "add",
        "upsert",
        "pause",
        "resume",
        "trigger",
        "cancel-retry",
        "retry-run",
        "emit",
        "queue",
        "queue-runs",
        "cancel-run",
        "cancel-one",
        "pause",
        "remove",
        "add-again",
        "bulk-pause",
        "bulk-resume",
        "add-paused",
        "set-result",
    ] {
        let status = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "child_one_operation",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ENV_ACK_OP, op)
            .env("CRONACTOR_ACK_STORE", &store)
            .env("CRONACTOR_ACK_OUT", &out)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status()
            .expect("run child");
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(
                status.signal(),
                Some(libc::SIGKILL),
                "{op}: the child did not kill itself after Ok: {status:?}"
            );
        }
        let answer = std::fs::read_to_string(&out).expect("the child's answer");
        let store = SledStore::open(&store).expect("the store opens after a SIGKILL");
        let loaded = store.load().expect("load");
        assert!(
            loaded.quarantined.is_empty(),
            "{op}: {:?}",
            loaded.quarantined
        );
        let j = job(&loaded, "j");
        let gen = j.as_ref().map(|j| j.spec.payload["gen"].clone());
        let paused = j.as_ref().map(|j| j.state.paused.is_some());
        match op {
            "add" => assert_eq!((gen, paused), (Some(1.into()), Some(false)), "{op}"),
            "upsert" => assert_eq!((gen, paused), (Some(2.into()), Some(false)), "{op}"),
            "pause" => assert_eq!(paused, Some(true), "{op}"),
            "resume" => assert_eq!(paused, Some(false), "{op}"),
            "trigger" => {
                let state = &j.expect("job j").state;
                let in_flight: Vec<String> = state
                    .in_flight
                    .iter()
                    .map(|r| r.run_id.to_string())
                    .collect();
                assert_eq!(in_flight, [answer.trim()], "{op}: the triggered run");
            }
            "cancel-retry" => {
                let r = job(&loaded, "r").expect("job r");
                assert_eq!(
                    r.state.retry_wait, None,
                    "{op}: the cancelled retry is gone"
                );
            }
            "retry-run" | "emit" => {
                let id = if op == "emit" { "e" } else { "r" };
                let state = job(&loaded, id).expect("the job").state;
                let in_flight = state
                    .in_flight
                    .iter()
                    .any(|r| r.run_id.to_string() == answer.trim());
                // r's handler fails at once: its run may have ended, and its
                // end been committed, between the Ok and the kill.
                let ended = op == "retry-run"
                    && state
                        .last_run
                        .as_ref()
                        .is_some_and(|r| r.run_id.to_string() == answer.trim());
                assert!(
                    in_flight || ended,
                    "{op}: run {answer} neither in flight nor ended in {state:?}"
                );
            }
            "queue" => {
                let state = job(&loaded, "q").expect("job q").state;
                assert_eq!(state.in_flight.len(), 1, "{op}: {state:?}");
                let queued: Vec<_> = state
                    .queue
                    .iter()
                    .map(|f| (f.trigger, f.attempt, f.event.clone()))
                    .collect();
                let event = ("go-q".to_string(), Arc::new(serde_json::json!({ "n": 7 })));
                assert_eq!(
                    queued,
                    [(cronactor::Trigger::Event, 1, Some(event))],
                    "{op}: the queued fire"
                );
            }
            "queue-runs" => {
                assert_eq!(
                    answer.trim(),
                    r#"Recovery null; Event {"n":7}"#,
                    "{op}: the interrupted run's retry, then the queued fire"
                );
                let state = job(&loaded, "q").expect("job q").state;
                assert!(state.queue.is_empty(), "{op}: {state:?}");
            }
            "cancel-run" => {
                let state = job(&loaded, "c").expect("job c").state;
                let runs: Vec<_> = state
                    .in_flight
                    .iter()
                    .map(|r| (r.run_id.to_string(), r.cancelled))
                    .collect();
                assert_eq!(
                    runs,
                    [(
                        answer.trim().to_string(),
                        Some(cronactor::CancelReason::Request)
                    )],
                    "{op}: the cancelled run, marked"
                );
            }
            "cancel-one" => {
                let state = job(&loaded, "k").expect("job k").state;
                let marked: Vec<_> = state
                    .in_flight
                    .iter()
                    .filter(|r| r.cancelled == Some(cronactor::CancelReason::Request))
                    .map(|r| r.run_id.to_string())
                    .collect();
                assert_eq!(state.in_flight.len(), 2, "{op}: {state:?}");
                assert_eq!(marked, [answer.trim()], "{op}: the cancelled run alone");
            }
            "remove" => assert!(j.is_none(), "{op}: {j:?}"),
            "add-paused" => {
                let state = job(&loaded, "p").expect("job p").state;
                let note = state.paused.and_then(|p| p.note);
                assert_eq!(note.as_deref(), Some("gated"), "{op}: added paused");
            }
            "set-result" => {
                let state = j.expect("job j").state;
                assert_eq!(
                    state.last_result.as_deref(),
                    Some(&serde_json::json!({ "upto": "2026-11-30" })),
                    "{op}: the result set"
                );
            }
            "add-again" => {
                let j = j.expect("job j");
                assert_eq!(j.spec.payload["gen"], 3, "{op}: the new spec");
                assert_eq!(j.state.paused, None, "{op}: not the old state");
                assert_eq!(j.state.counters.runs, 0, "{op}: not the old counters");
                assert!(j.state.in_flight.is_empty(), "{op}: not the old runs");
            }
            "bulk-pause" | "bulk-resume" => {
                let paused = op == "bulk-pause";
                assert_eq!(answer.trim(), BULK_JOBS.to_string(), "{op}: changed");
                for i in 0..BULK_JOBS {
                    let b = job(&loaded, &format!("b{i:03}")).expect("a tagged job");
                    let note = b.state.paused.as_ref().and_then(|p| p.note.as_deref());
                    let expected = paused.then_some("bulk held");
                    assert_eq!(note, expected, "{op}: b{i:03}");
                    assert_eq!(b.state.paused.is_some(), paused, "{op}: b{i:03}");
                }
                let other = job(&loaded, "other").expect("the untagged job");
                assert_eq!(other.state.paused, None, "{op}: the untagged job");
            }
            other => unreachable!("{other}"),
        }
    }
}

/// Jobs tagged `bulk` in the `bulk-pause` and `bulk-resume` operations.
const BULK_JOBS: usize = 300;

const ENV_ACK_OP: &str = "CRONACTOR_ACK_OP";

/// The child of `each_control_operation_holds_when_the_process_is_killed_right_after_its_ok`:
/// one operation, then SIGKILL. Ignored unless run by it.
#[test]
#[ignore = "run by each_control_operation_holds_when_the_process_is_killed_right_after_its_ok"]
fn child_one_operation() {
    let Ok(op) = std::env::var(ENV_ACK_OP) else {
        return;
    };
    // SAFETY: plain FFI call with constant arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let store = std::env::var("CRONACTOR_ACK_STORE").expect("store path");
    let out = std::env::var("CRONACTOR_ACK_OUT").expect("answer path");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let answer = runtime.block_on(one_operation(&op, PathBuf::from(store)));
    std::fs::write(out, answer).expect("answer");
    // The instant after Ok: no destructor, no final flush.
    // SAFETY: plain FFI calls on this process.
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    unreachable!("killed");
}

/// Runs `op` on a scheduler on `store`; returns what the parent checks.
async fn one_operation(op: &str, store: PathBuf) -> String {
    use cronactor::{
        Backoff, JobContext, JobSpec, OverlapPolicy, RetryPolicy, ScheduleSpec, Scheduler,
    };

    // Job q's handler: held until cancelled, except in `queue-runs`, where
    // it ends at once; it notes the trigger and event payload of each run.
    let open_gate = op == "queue-runs";
    let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen_by_gate = seen.clone();

    let scheduler = Scheduler::builder()
        .handler("block", |ctx: JobContext| async move {
            ctx.cancel.cancelled().await;
            Ok::<(), std::io::Error>(())
        })
        .handler("fail", |_ctx: JobContext| async move {
            Err::<(), _>(std::io::Error::other("fails"))
        })
        .handler("gate", move |ctx: JobContext| {
            let seen = seen_by_gate.clone();
            async move {
                if !open_gate {
                    ctx.cancel.cancelled().await;
                }
                let payload = ctx.event.map(|(_, p)| p.to_string());
                let payload = payload.unwrap_or_else(|| "null".into());
                let mut seen = seen.lock().expect("lock");
                seen.push(format!("{:?} {payload}", ctx.trigger));
                Ok::<(), std::io::Error>(())
            }
        })
        .handler("stubborn", |_ctx: JobContext| async move {
            std::future::pending::<()>().await;
            Ok::<(), std::io::Error>(())
        })
        .store_path(&store)
        .configure(|c| {
            if matches!(op, "cancel-run" | "queue" | "bulk-pause" | "bulk-resume") {
                // No group commit while the operation runs: what is stored
                // at the kill is what the operation waited for.
                c.flush_interval = Duration::from_secs(3600);
            }
        })
        .start()
        .await
        .expect("the store opens after a SIGKILL");
    // Once a year: no fire of its own while the test runs.
    let spec = |gen: u32| {
        JobSpec::builder("j", ScheduleSpec::cron("0 0 0 1 1 *"), "block")
            .payload(serde_json::json!({ "gen": gen }))
            .build()
            .expect("spec")
    };
    match op {
        "add" => scheduler.add(spec(1)).await.map(|_| String::new()),
        "upsert" => scheduler.upsert(spec(2)).await.map(|_| String::new()),
        "pause" => scheduler
            .pause("j", Some("held"))
            .await
            .map(|_| String::new()),
        "resume" => scheduler.resume("j", None).await.map(|_| String::new()),
        "trigger" => match scheduler.trigger("j").await {
            Ok(cronactor::TriggerOutcome::Started(run_id)) => Ok(run_id.to_string()),
            other => panic!("trigger: {other:?}"),
        },
        "cancel-retry" => {
            let r = JobSpec::builder("r", ScheduleSpec::cron("0 0 0 1 1 *"), "fail")
                .retry(RetryPolicy::new(
                    1,
                    Backoff::Fixed(Duration::from_secs(3600)),
                ))
                .build()
                .expect("spec");
            scheduler.add(r).await.expect("add r");
            scheduler.trigger("r").await.expect("trigger r");
            let deadline = Instant::now() + Duration::from_secs(30);
            while scheduler
                .status("r")
                .await
                .expect("status")
                .retry_wait
                .is_none()
            {
                assert!(Instant::now() < deadline, "no retry waiting");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // Long enough for the group commit to make the wait durable.
            tokio::time::sleep(Duration::from_millis(500)).await;
            scheduler.cancel("r").await.map(|_| String::new())
        }
        "retry-run" => {
            let failed = scheduler.history("r", 10).await.expect("history");
            let failed = failed
                .iter()
                .find(|run| run.outcome.is_failure())
                .expect("a failed run of r");
            match scheduler.retry_run(failed.run_id).await {
                Ok(cronactor::TriggerOutcome::Started(run_id)) => Ok(run_id.to_string()),
                other => panic!("retry_run: {other:?}"),
            }
        }
        "emit" => {
            let e = JobSpec::builder("e", ScheduleSpec::cron("0 0 0 1 1 *"), "block")
                .listen("go")
                .build()
                .expect("spec");
            scheduler.add(e).await.expect("add e");
            match scheduler.emit("go", serde_json::json!({})).await {
                Ok(fired) => match &fired[..] {
                    [(_, cronactor::TriggerOutcome::Started(run_id))] => Ok(run_id.to_string()),
                    other => panic!("emit: {other:?}"),
                },
                Err(e) => Err(e),
            }
        }
        "queue" => {
            let q = JobSpec::builder("q", ScheduleSpec::cron("0 0 0 1 1 *"), "gate")
                .overlap(OverlapPolicy::Queue { max: 1 })
                .listen("go-q")
                .build()
                .expect("spec");
            scheduler.add(q).await.expect("add q");
            let first = scheduler.trigger("q").await.expect("trigger q");
            assert!(matches!(first, cronactor::TriggerOutcome::Started(_)));
            match scheduler.emit("go-q", serde_json::json!({ "n": 7 })).await {
                Ok(fired) => match &fired[..] {
                    [(_, cronactor::TriggerOutcome::Queued)] => Ok(String::new()),
                    other => panic!("emit: {other:?}"),
                },
                Err(e) => Err(e),
            }
        }
        "queue-runs" => {
            // The restart retried q's interrupted run, then ran the queued
            // fire: wait for both, and for their end to be durable.
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let st = scheduler.status("q").await.expect("status q");
                if st.counters.succeeded >= 2 && st.queued == 0 {
                    break;
                }
                assert!(Instant::now() < deadline, "q did not run twice: {st:?}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // Answered once durable, with q's earlier state writes.
            scheduler.pause("q", None).await.expect("pause q");
            let seen = seen.lock().expect("lock").join("; ");
            Ok(seen)
        }
        "cancel-run" => {
            let c = JobSpec::builder("c", ScheduleSpec::cron("0 0 0 1 1 *"), "stubborn")
                .build()
                .expect("spec");
            scheduler.add(c).await.expect("add c");
            let run_id = match scheduler.trigger("c").await {
                Ok(cronactor::TriggerOutcome::Started(run_id)) => run_id,
                other => panic!("trigger c: {other:?}"),
            };
            match scheduler.cancel("c").await {
                Ok(runs) if runs == [run_id] => Ok(run_id.to_string()),
                Ok(runs) => panic!("cancel c: {runs:?}"),
                Err(e) => Err(e),
            }
        }
        "cancel-one" => {
            let k = JobSpec::builder("k", ScheduleSpec::cron("0 0 0 1 1 *"), "stubborn")
                .overlap(cronactor::OverlapPolicy::Concurrent { max: None })
                .build()
                .expect("spec");
            scheduler.add(k).await.expect("add k");
            let mut runs = Vec::new();
            for _ in 0..2 {
                match scheduler.trigger("k").await {
                    Ok(cronactor::TriggerOutcome::Started(run_id)) => runs.push(run_id),
                    other => panic!("trigger k: {other:?}"),
                }
            }
            scheduler
                .cancel_run("k", runs[1])
                .await
                .map(|()| runs[1].to_string())
        }
        "remove" => scheduler.remove("j").await.map(|_| String::new()),
        "add-again" => scheduler.add(spec(3)).await.map(|_| String::new()),
        "set-result" => scheduler
            .set_last_result("j", Some(serde_json::json!({ "upto": "2026-11-30" })))
            .await
            .map(|()| String::new()),
        "add-paused" => {
            let p = JobSpec::builder("p", ScheduleSpec::cron("* * * * * *"), "stubborn")
                .build()
                .expect("spec");
            scheduler
                .add_paused(p, Some("gated"))
                .await
                .map(|()| String::new())
        }
        "bulk-pause" => {
            for i in 0..BULK_JOBS {
                let b = JobSpec::builder(
                    format!("b{i:03}"),
                    ScheduleSpec::cron("0 0 0 1 1 *"),
                    "block",
                )
                .tag("bulk")
                .build()
                .expect("spec");
                scheduler.add(b).await.expect("add a tagged job");
            }
            let other = JobSpec::builder("other", ScheduleSpec::cron("0 0 0 1 1 *"), "block")
                .build()
                .expect("spec");
            scheduler.add(other).await.expect("add other");
            let bulk = cronactor::JobSelector::tag("bulk");
            scheduler
                .pause_matching(&bulk, Some("bulk held"))
                .await
                .map(|report| report.changed.len().to_string())
        }
        "bulk-resume" => {
            let bulk = cronactor::JobSelector::tag("bulk");
            scheduler
                .resume_matching(&bulk, None)
                .await
                .map(|report| report.changed.len().to_string())
        }
        other => panic!("unknown operation {other}"),
    }
    .unwrap_or_else(|e| panic!("{op}: {e}"))
}
