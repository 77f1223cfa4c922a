//! "Acknowledged means durable" under load, with a real SIGKILL.
//!
//! Each test runs several child processes (this test binary re-executed to run
//! the ignored test `acknowledged_child`, selected by environment variables), on
//! one sled store:
//!
//! - `act`: a scheduler on the store with thousands of jobs firing every
//!   second (fire-ahead on, the default with a durable store, so each has a
//!   prepared run for its next slot most of the time); after a warm-up it
//!   sends control operations on some jobs at chosen instants of the wall
//!   clock second (mid-window, just before a slot, just after it), writes each `Ok`
//!   with its instant, and kills itself with SIGKILL the instant the last
//!   one returned.
//! - two restarts killed by the parent while they start (150 ms and 280 ms
//!   after their spawn: opening the store, folding the journal, recovering);
//! - the parent opens the store and checks the records hold exactly what was
//!   acknowledged;
//! - a restart killed 100 ms after its start;
//! - `verify`: a scheduler restarted on the store runs for a few seconds;
//!   every handler start is logged (job, slot, trigger, payload generation),
//!   then the statuses and histories of the audited jobs; it kills itself.
//!
//! The parent checks what the restart did with each job (paused jobs and
//! removed jobs never start again, updated jobs run their new spec, resumed
//! jobs run), and that the killed process started no slot after the `Ok`
//! that should have stopped it.
//!
//! Which side of a race each wave lands on varies from run to run; the
//! checks hold on either side. Variants with the store folding its journal
//! every 50 ms (a fold in progress at the kill) run for a pause and for a
//! remove then add; the other fold variants, and the adds killed after the
//! last `Ok`, are ignored to keep the suite short (`-- --ignored` runs them,
//! about 10 s each).

use cronactor::store::SledStore;
use cronactor_actors::{JobRecord, SnapshotStore};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// When the child's test function began (for the startup's duration).
static CHILD_START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

const ENV_SCENARIO: &str = "ACKNOWLEDGED_SCENARIO";
const ENV_PHASE: &str = "ACKNOWLEDGED_PHASE";
const ENV_DIR: &str = "ACKNOWLEDGED_DIR";

/// Busy jobs firing every second in the killed process.
const FILLERS: usize = 2_000;
/// Audited jobs per wave.
const WAVE: usize = 8;
/// The waves of a scenario: the instant of the wall-clock second they are
/// sent at (mid-window; just before a slot; just after it, while the slot's
/// prepared runs start), and their name.
const WAVES: [(u32, &str); 3] = [(600, "a"), (985, "b"), (2, "c")];
/// Audited jobs in all waves: `t00`.. (wave `i / WAVE`).
const TARGETS: usize = WAVE * WAVES.len();

fn store_dir(dir: &Path) -> PathBuf {
    dir.join("store")
}

fn starts_path(dir: &Path, phase: &str) -> PathBuf {
    dir.join(format!("starts-{phase}.txt"))
}

fn answer_path(dir: &Path, phase: &str) -> PathBuf {
    dir.join(format!("answer-{phase}.txt"))
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn target(i: usize) -> String {
    format!("t{i:02}")
}

/// The wave of target `id`.
fn wave_of(id: &str) -> usize {
    id[1..].parse::<usize>().expect("a target id") / WAVE
}

fn filler(i: usize) -> String {
    format!("f{i:04}")
}

// ---------------------------------------------------------------------------
// The parent's side.

/// Starts one phase of a scenario in a child: this test binary, running
/// `acknowledged_child`.
fn spawn_child(dir: &Path, scenario: &str, phase: &str) -> std::process::Child {
    Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "acknowledged_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV_SCENARIO, scenario)
        .env(ENV_PHASE, phase)
        .env(ENV_DIR, dir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child")
}

/// Runs one phase of a scenario in a child; it must end by SIGKILL (its own).
fn run_child(dir: &Path, scenario: &str, phase: &str) {
    let mut child = spawn_child(dir, scenario, phase);
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{scenario}/{phase}: the child did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "{scenario}/{phase}: the child did not kill itself (it failed): {status:?}"
    );
}

/// Starts a restart on the store (phase `phase`, which behaves as
/// `reboot`) and kills it with SIGKILL `after` its spawn, while it opens
/// the store, folds the journal the killed process left, loads the jobs and
/// recovers them (it takes 300 to 450 ms to start here).
fn kill_during_start(dir: &Path, scenario: &str, phase: &str, after: Duration) {
    let mut child = spawn_child(dir, scenario, phase);
    std::thread::sleep(after);
    let _ = child.kill();
    let status = child.wait().expect("wait");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "{scenario}/{phase}: {status:?}"
    );
}

/// One handler start, as the child logged it.
#[derive(Debug, Clone)]
struct Start {
    job: String,
    scheduled_ms: i64,
    trigger: String,
    gen: u64,
    at_ms: i64,
    run_id: String,
}

fn starts(dir: &Path, phase: &str) -> Vec<Start> {
    let text = std::fs::read_to_string(starts_path(dir, phase)).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            // A line cut by the kill has fewer fields.
            match line.split_whitespace().collect::<Vec<_>>()[..] {
                [job, scheduled, trigger, gen, at, run_id] => Some(Start {
                    job: job.into(),
                    scheduled_ms: scheduled.parse().ok()?,
                    trigger: trigger.into(),
                    gen: gen.parse().ok()?,
                    at_ms: at.parse().ok()?,
                    run_id: run_id.into(),
                }),
                _ => None,
            }
        })
        .collect()
}

/// The acknowledgements the act phase logged: op, id → (instant, extra).
fn acks(dir: &Path) -> BTreeMap<(String, String), (i64, String)> {
    let text = std::fs::read_to_string(answer_path(dir, "act")).expect("the act answer");
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.splitn(5, ' ').collect();
        if let ["ack", op, id, ms, rest @ ..] = &parts[..] {
            let extra = rest.first().map(|s| s.to_string()).unwrap_or_default();
            out.insert(
                (op.to_string(), id.to_string()),
                (ms.parse().expect("ms"), extra),
            );
        }
    }
    out
}

/// What the verify phase wrote: statuses (`None`: unknown job) and histories.
struct Verified {
    status: BTreeMap<String, Option<cronactor::JobStatus>>,
    history: BTreeMap<String, Vec<cronactor::RunRecord>>,
}

fn verified(dir: &Path) -> Verified {
    let text = std::fs::read_to_string(answer_path(dir, "verify")).expect("the verify answer");
    let mut out = Verified {
        status: BTreeMap::new(),
        history: BTreeMap::new(),
    };
    for line in text.lines() {
        let parts: Vec<&str> = line.splitn(3, ' ').collect();
        match &parts[..] {
            ["status", id, json] => {
                out.status.insert(
                    id.to_string(),
                    Some(serde_json::from_str(json).expect("status")),
                );
            }
            ["unknown", id] => {
                out.status.insert(id.to_string(), None);
            }
            ["history", id, json] => {
                out.history
                    .insert(id.to_string(), serde_json::from_str(json).expect("history"));
            }
            _ => {}
        }
    }
    out
}

/// The store as the parent finds it after the kill: every job's record and
/// the history of `with_history`.
fn load_store(
    dir: &Path,
    with_history: &[String],
) -> (
    BTreeMap<String, JobRecord>,
    BTreeMap<String, Vec<cronactor::RunRecord>>,
) {
    let store = SledStore::open(store_dir(dir)).expect("the store opens after a SIGKILL");
    let loaded = store.load().expect("load");
    assert!(loaded.quarantined.is_empty(), "{:?}", loaded.quarantined);
    let jobs: BTreeMap<String, JobRecord> = loaded
        .jobs
        .into_iter()
        .map(|j| (j.spec.id.as_str().to_owned(), j))
        .collect();
    let mut history = BTreeMap::new();
    for id in with_history {
        let id_ = cronactor_actors::JobId::new(id.as_str()).expect("id");
        history.insert(id.clone(), store.history(&id_, 100).expect("history"));
    }
    drop(store);
    (jobs, history)
}

/// Prints what the killed process was doing (with `--nocapture`): the
/// fillers with a run claimed in the store at the kill (prepared runs,
/// mostly), the lateness of its starts, and where in the wall-clock second
/// the acknowledgements came.
fn diagnose(dir: &Path, jobs: &BTreeMap<String, JobRecord>) {
    let name = std::fs::read_to_string(dir.join("scenario.txt")).unwrap_or_default();
    let claimed = jobs
        .values()
        .filter(|j| !j.state.in_flight.is_empty())
        .count();
    let act = starts(dir, "act");
    let mut late: Vec<i64> = act.iter().map(|s| s.at_ms - s.scheduled_ms).collect();
    late.sort_unstable();
    let pct = |p: usize| late.get(late.len() * p / 100).copied().unwrap_or(-1);
    let acks: Vec<String> = acks(dir)
        .iter()
        .filter(|((op, _), _)| op != "sent")
        .map(|((op, id), (ms, _))| format!("{op} {id} @{:03}", ms.rem_euclid(1000)))
        .take(24)
        .collect();
    eprintln!(
        "[{name}] jobs in store {}, with a claimed run {claimed}; act starts {} (lateness ms p50 {} p99 {} max {}); acks {:?}",
        jobs.len(),
        act.len(),
        pct(50),
        pct(99),
        late.last().copied().unwrap_or(-1),
        acks
    );
}

fn gen_of(record: &JobRecord) -> u64 {
    record.spec.payload["gen"].as_u64().unwrap_or(0)
}

/// Starts of `ids` in the act phase for a slot after the instant their
/// operation was acknowledged (`ack_of`): a paused, removed or re-planned
/// job must not start such a slot.
fn starts_after_ack(
    act: &[Start],
    ack_of: impl Fn(&str) -> Option<i64>,
    only_schedule: bool,
) -> Vec<Start> {
    act.iter()
        .filter(|s| {
            ack_of(&s.job).is_some_and(|ack| s.scheduled_ms > ack)
                && (!only_schedule || s.trigger == "Schedule" || s.trigger == "CatchUp")
        })
        .cloned()
        .collect()
}

/// Restarts on the store twice: once killed 100 ms after its start (what
/// the recovery itself writes must not undo anything either), then the
/// verify phase.
fn restart(dir: &Path, name: &str) {
    run_child(dir, name, "reboot");
    run_child(dir, name, "verify");
}

/// Every start after the kill: in the restarts killed early, the quick
/// reboot and the verify phase.
fn restarted(dir: &Path) -> Vec<Start> {
    let mut all = starts(dir, "early1");
    all.extend(starts(dir, "early2"));
    all.extend(starts(dir, "reboot"));
    all.extend(starts(dir, "verify"));
    all
}

/// Runs the scenario's act phase (killed right after its last `Ok`), then
/// two restarts killed while they start (before the parent reads the store:
/// the first restart folds the journal the act phase left).
fn scenario(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("scenario.txt"), name).expect("name");
    if name == "orphan" {
        run_child(dir.path(), name, "seed");
    }
    run_child(dir.path(), name, "act");
    kill_during_start(dir.path(), name, "early1", Duration::from_millis(150));
    kill_during_start(dir.path(), name, "early2", Duration::from_millis(280));
    dir
}

// ---------------------------------------------------------------------------
// The tests.

/// Starts of jobs whose id begins with one of `prefixes`.
fn of(starts: Vec<Start>, prefixes: &[char]) -> Vec<Start> {
    starts
        .into_iter()
        .filter(|s| s.job.starts_with(prefixes))
        .collect()
}

/// Pause of busy jobs (a prepared run for the next slot) in three waves
/// (mid-window, just before the slot, just after it); SIGKILL right after
/// the last `Ok`. The store holds every pause with its note; the killed
/// process started no slot after the pause's `Ok`; the restart starts none
/// of them and shows them paused with their note.
#[test]
fn pause_of_busy_jobs_holds_after_sigkill() {
    check_pause("pause");
}

/// As `pause_of_busy_jobs_holds_after_sigkill`, with the store folding its
/// journal every 50 ms (a fold is likely in progress at the kill).
#[test]
fn pause_of_busy_jobs_holds_after_sigkill_with_constant_folds() {
    check_pause("pause+fold");
}

fn check_pause(name: &str) {
    let dir = scenario(name);
    let dir = dir.path();
    let acks = acks(dir);
    let (jobs, _) = load_store(dir, &[]);
    diagnose(dir, &jobs);
    let note = |id: &str| format!("wave-{}", WAVES[wave_of(id)].1);
    for id in (0..TARGETS).map(target) {
        assert!(
            acks.contains_key(&("pause".into(), id.clone())),
            "{id}: no ack"
        );
        let j = jobs.get(&id).unwrap_or_else(|| panic!("{id}: lost"));
        let found = j.state.paused.as_ref().and_then(|p| p.note.clone());
        assert_eq!(found, Some(note(&id)), "{id}: the pause did not hold");
    }
    let act = starts(dir, "act");
    let ack_of = |job: &str| acks.get(&("pause".into(), job.into())).map(|a| a.0);
    let late = starts_after_ack(&act, ack_of, false);
    assert!(
        late.is_empty(),
        "slots started after the pause's Ok: {late:?}"
    );

    restart(dir, name);
    let v = verified(dir);
    let ran = of(restarted(dir), &['t']);
    assert!(ran.is_empty(), "paused jobs ran after the restart: {ran:?}");
    for id in (0..TARGETS).map(target) {
        let st = v.status[&id].as_ref().expect("a paused job's status");
        assert_eq!(st.phase, cronactor::JobPhase::Paused, "{id}: {st:?}");
        assert_eq!(st.pause_note, Some(note(&id)), "{id}");
    }
    // The fillers kept running after the restart (the restart is alive).
    assert!(!of(starts(dir, "verify"), &['f']).is_empty());
}

/// Remove of busy jobs in three waves (the third with `try_remove`);
/// SIGKILL right after the last `Ok`:
/// the jobs and their history are gone from the store, the killed process
/// started no slot of theirs after the `Ok`, and the restart never runs them.
#[test]
fn remove_of_busy_jobs_holds_after_sigkill() {
    check_remove("remove");
}

/// As `remove_of_busy_jobs_holds_after_sigkill`, folding every 50 ms.
#[test]
#[ignore = "the longer crash audit: cargo test --all-features --test recovery_acknowledged -- --ignored"]
fn remove_of_busy_jobs_holds_after_sigkill_with_constant_folds() {
    check_remove("remove+fold");
}

fn check_remove(name: &str) {
    let dir = scenario(name);
    let dir = dir.path();
    let acks = acks(dir);
    let ids: Vec<String> = (0..TARGETS).map(target).collect();
    let (jobs, history) = load_store(dir, &ids);
    diagnose(dir, &jobs);
    for id in &ids {
        assert!(
            acks.contains_key(&("remove".into(), id.clone())),
            "{id}: no ack"
        );
        assert!(
            !jobs.contains_key(id),
            "{id}: removed but in the store: {:?}",
            jobs[id]
        );
        assert!(
            history[id].is_empty(),
            "{id}: history left: {:?}",
            history[id]
        );
    }
    assert_eq!(jobs.len(), FILLERS, "the fillers are all there");
    let act = starts(dir, "act");
    let ack_of = |job: &str| acks.get(&("remove".into(), job.into())).map(|a| a.0);
    let late = starts_after_ack(&act, ack_of, false);
    assert!(
        late.is_empty(),
        "slots started after the remove's Ok: {late:?}"
    );

    restart(dir, name);
    let v = verified(dir);
    let ran = of(restarted(dir), &['t']);
    assert!(
        ran.is_empty(),
        "removed jobs ran after the restart: {ran:?}"
    );
    for id in &ids {
        assert!(
            v.status[id].is_none(),
            "{id}: back after the restart: {:?}",
            v.status[id]
        );
    }
}

/// Resume of every-second jobs added paused, in three waves, among busy
/// jobs; SIGKILL right after the last `Ok`: the store holds them resumed
/// and the restart runs them.
#[test]
fn resume_of_paused_jobs_holds_after_sigkill() {
    let name = "resume";
    let dir = scenario(name);
    let dir = dir.path();
    let acks = acks(dir);
    let (jobs, _) = load_store(dir, &[]);
    diagnose(dir, &jobs);
    for id in (0..TARGETS).map(target) {
        assert!(
            acks.contains_key(&("resume".into(), id.clone())),
            "{id}: no ack"
        );
        let j = jobs.get(&id).unwrap_or_else(|| panic!("{id}: lost"));
        assert_eq!(j.state.paused, None, "{id}: the resume did not hold");
    }
    restart(dir, name);
    let v = verified(dir);
    let ran = starts(dir, "verify");
    for id in (0..TARGETS).map(target) {
        let st = v.status[&id].as_ref().expect("status");
        assert_ne!(st.phase, cronactor::JobPhase::Paused, "{id}: {st:?}");
        assert!(
            ran.iter()
                .any(|s| s.job == id && (s.trigger == "Schedule" || s.trigger == "CatchUp")),
            "{id}: resumed, but no slot ran after the restart"
        );
    }
}

/// Upsert of busy jobs to a new spec (a yearly schedule, a new payload per
/// wave); SIGKILL right after the last `Ok`: the store holds the new spec;
/// no slot of the old schedule starts after the `Ok`, nor after the
/// restart; a run the restart recovers runs with the new payload.
#[test]
fn update_of_busy_jobs_holds_after_sigkill() {
    check_update("update");
}

/// As `update_of_busy_jobs_holds_after_sigkill`, folding every 50 ms.
#[test]
#[ignore = "the longer crash audit: cargo test --all-features --test recovery_acknowledged -- --ignored"]
fn update_of_busy_jobs_holds_after_sigkill_with_constant_folds() {
    check_update("update+fold");
}

fn check_update(name: &str) {
    let dir = scenario(name);
    let dir = dir.path();
    let acks = acks(dir);
    let (jobs, _) = load_store(dir, &[]);
    diagnose(dir, &jobs);
    let gen = |id: &str| 2 + wave_of(id) as u64;
    for id in (0..TARGETS).map(target) {
        assert!(
            acks.contains_key(&("update".into(), id.clone())),
            "{id}: no ack"
        );
        let j = jobs.get(&id).unwrap_or_else(|| panic!("{id}: lost"));
        assert_eq!(gen_of(j), gen(&id), "{id}: the new spec did not hold");
        let schedule = format!("{:?}", j.spec.schedule);
        assert!(schedule.contains("0 0 0 1 1 *"), "{id}: {schedule}");
    }
    let act = starts(dir, "act");
    let ack_of = |job: &str| acks.get(&("update".into(), job.into())).map(|a| a.0);
    let late = starts_after_ack(&act, ack_of, true);
    assert!(
        late.is_empty(),
        "old slots started after the update's Ok: {late:?}"
    );

    restart(dir, name);
    let ran = of(restarted(dir), &['t']);
    let wrong: Vec<&Start> = ran
        .iter()
        .filter(|s| s.trigger != "Recovery" || s.gen != gen(&s.job))
        .collect();
    assert!(
        wrong.is_empty(),
        "runs of the old spec after the restart: {wrong:?}"
    );
}

/// Remove then add of the same id on busy jobs (wave a: the add sent once
/// the remove answered; wave b: both sent at once, the add not waiting;
/// wave c: the same with an upsert); SIGKILL right after the last add's `Ok`: exactly one job under
/// each id, with the new spec and a fresh state, and the restart runs only
/// it.
#[test]
fn remove_then_add_of_busy_jobs_holds_after_sigkill() {
    check_readd("readd");
}

/// As `remove_then_add_of_busy_jobs_holds_after_sigkill`, folding every
/// 50 ms.
#[test]
fn remove_then_add_of_busy_jobs_holds_after_sigkill_with_constant_folds() {
    check_readd("readd+fold");
}

fn check_readd(name: &str) {
    let dir = scenario(name);
    let dir = dir.path();
    let acks = acks(dir);
    let ids: Vec<String> = (0..TARGETS).map(target).collect();
    let (jobs, history) = load_store(dir, &ids);
    diagnose(dir, &jobs);
    let gen = |id: &str| 2 + wave_of(id) as u64;
    for id in &ids {
        let (add_ms, _) = acks
            .get(&("add".into(), id.clone()))
            .unwrap_or_else(|| panic!("{id}: no ack"));
        let (sent_ms, _) = acks[&("sent".into(), id.clone())];
        let j = jobs.get(id).unwrap_or_else(|| panic!("{id}: lost"));
        assert_eq!(gen_of(j), gen(id), "{id}: not the new spec");
        assert_eq!(j.state.paused, None, "{id}");
        // The new job's slots count from its add: no run of the old job.
        let old: Vec<_> = history[id]
            .iter()
            .filter(|r| r.scheduled.timestamp_millis() < sent_ms)
            .collect();
        assert!(old.is_empty(), "{id}: the old job's runs: {old:?}");
        let old_flight: Vec<_> = j
            .state
            .in_flight
            .iter()
            .filter(|r| r.scheduled.timestamp_millis() < sent_ms)
            .collect();
        assert!(
            old_flight.is_empty(),
            "{id}: the old job's runs in flight: {old_flight:?}"
        );
        assert!(
            j.state.counters.fires <= 2,
            "{id}: the old counters (added at {add_ms}): {:?}",
            j.state.counters
        );
    }
    restart(dir, name);
    let v = verified(dir);
    let all = restarted(dir);
    for id in &ids {
        let ran: Vec<&Start> = all.iter().filter(|s| &s.job == id).collect();
        assert!(!ran.is_empty(), "{id}: no run after the restart");
        assert!(
            ran.iter().all(|s| s.gen == gen(id)),
            "{id}: old spec ran: {ran:?}"
        );
        let st = v.status[id].as_ref().expect("status");
        assert!(
            st.counters.fires <= 8,
            "{id}: old counters: {:?}",
            st.counters
        );
    }
}

/// 2,000 adds in flight at once, SIGKILL after the 1,000th `Ok` (while the
/// others are still being written): every acknowledged job is in the store
/// with its spec, and comes back after the restart.
#[test]
fn concurrent_adds_killed_midway_hold() {
    concurrent_adds("adds-mid");
}

/// 2,000 adds in flight at once, SIGKILL right after the last `Ok`.
#[test]
#[ignore = "the longer crash audit: cargo test --all-features --test recovery_acknowledged -- --ignored"]
fn concurrent_adds_killed_after_the_last_hold() {
    concurrent_adds("adds-end");
}

/// As `concurrent_adds_killed_midway_hold`, folding every 50 ms.
#[test]
#[ignore = "the longer crash audit: cargo test --all-features --test recovery_acknowledged -- --ignored"]
fn concurrent_adds_killed_midway_hold_with_constant_folds() {
    concurrent_adds("adds-mid+fold");
}

fn concurrent_adds(name: &str) {
    let dir = scenario(name);
    let dir = dir.path();
    let acks = acks(dir);
    let added: Vec<String> = acks
        .keys()
        .filter(|(op, _)| op == "add")
        .map(|(_, id)| id.clone())
        .collect();
    let want = if name.starts_with("adds-mid") {
        1_000
    } else {
        FILLERS
    };
    assert!(added.len() >= want, "only {} acks logged", added.len());
    let (jobs, _) = load_store(dir, &[]);
    diagnose(dir, &jobs);
    let lost: Vec<&String> = added.iter().filter(|id| !jobs.contains_key(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged adds lost: {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    for id in &added {
        assert_eq!(gen_of(&jobs[id]), 1, "{id}");
    }
    restart(dir, name);
    let v = verified(dir);
    let gone: Vec<&String> = added
        .iter()
        .filter(|id| v.status.get(*id).is_none_or(|s| s.is_none()))
        .collect();
    assert!(
        gone.is_empty(),
        "acknowledged jobs missing after the restart: {:?}",
        &gone[..gone.len().min(10)]
    );
}

/// Jobs that passivate and wake all the time (every 3 s, passivate after
/// 2 s, wake 1 s before: `p..`) and passive yearly jobs (`y..`): half of
/// each paused, half removed, and jobs `r..` (every 3 s) removed and
/// upserted again at once with a new payload; one operation every 20 ms
/// over a period, SIGKILL right after the last `Ok`. The store holds every
/// operation, and the restart runs none of the paused or removed jobs, and
/// only the new spec of the others.
#[test]
fn pause_and_remove_of_passivating_jobs_hold_after_sigkill() {
    let name = "passive";
    let dir = scenario(name);
    let dir = dir.path();
    let acks = acks(dir);
    let readded: Vec<String> = (0..20).map(|i| format!("r{i:02}")).collect();
    let (jobs, history) = load_store(dir, &readded);
    for id in &readded {
        assert!(
            acks.contains_key(&("readd".into(), id.clone())),
            "{id}: no ack"
        );
        let (sent_ms, _) = acks[&("sent".into(), id.clone())];
        let j = jobs.get(id).unwrap_or_else(|| panic!("{id}: lost"));
        assert_eq!(gen_of(j), 2, "{id}: not the new spec");
        let old: Vec<_> = history[id]
            .iter()
            .filter(|r| r.scheduled.timestamp_millis() < sent_ms)
            .collect();
        assert!(old.is_empty(), "{id}: the old job's runs: {old:?}");
        let old_flight: Vec<_> = j
            .state
            .in_flight
            .iter()
            .filter(|r| r.scheduled.timestamp_millis() < sent_ms)
            .collect();
        assert!(
            old_flight.is_empty(),
            "{id}: the old job's runs in flight: {old_flight:?}"
        );
    }
    diagnose(dir, &jobs);
    let mut paused = Vec::new();
    let mut removed = Vec::new();
    for (op, id) in acks.keys() {
        match op.as_str() {
            "pause" => paused.push(id.clone()),
            "remove" => removed.push(id.clone()),
            _ => {}
        }
    }
    assert_eq!(paused.len(), 60, "pauses acknowledged");
    assert_eq!(removed.len(), 60, "removals acknowledged");
    for id in &paused {
        let j = jobs.get(id).unwrap_or_else(|| panic!("{id}: lost"));
        assert!(
            j.state.paused.is_some(),
            "{id}: the pause did not hold: {:?}",
            j.state
        );
    }
    for id in &removed {
        assert!(!jobs.contains_key(id), "{id}: the removal did not hold");
    }
    let act = starts(dir, "act");
    let ack_of = |job: &str| {
        acks.get(&("pause".into(), job.into()))
            .or_else(|| acks.get(&("remove".into(), job.into())))
            .map(|a| a.0)
    };
    let late = starts_after_ack(&act, ack_of, false);
    assert!(late.is_empty(), "slots started after the Ok: {late:?}");

    restart(dir, name);
    let v = verified(dir);
    let ran = of(restarted(dir), &['p', 'y']);
    assert!(
        ran.is_empty(),
        "paused or removed jobs ran after the restart: {ran:?}"
    );
    for id in &paused {
        let st = v.status[id].as_ref().expect("status");
        assert_eq!(st.phase, cronactor::JobPhase::Paused, "{id}: {st:?}");
    }
    for id in &removed {
        assert!(v.status[id].is_none(), "{id}: back after the restart");
    }
    let old = of(restarted(dir), &['r']);
    let old: Vec<&Start> = old.iter().filter(|s| s.gen != 2).collect();
    assert!(
        old.is_empty(),
        "the old spec ran after the restart: {old:?}"
    );
}

/// A run in flight (its handler waits for ever) when its job is paused
/// (b0, b1) or removed (b2, b3), SIGKILL right after the last `Ok`: the
/// store holds the paused jobs paused with the run in flight, the removed
/// ones gone; the restart records the run `Interrupted`, does not retry it
/// (the job is paused: counted in `skipped.paused`), and runs nothing of
/// those jobs.
#[test]
fn pause_or_remove_with_a_run_in_flight_holds_after_sigkill() {
    check_inflight("inflight");
}

/// As `pause_or_remove_with_a_run_in_flight_holds_after_sigkill`, folding
/// every 50 ms.
#[test]
#[ignore = "the longer crash audit: cargo test --all-features --test recovery_acknowledged -- --ignored"]
fn pause_or_remove_with_a_run_in_flight_holds_after_sigkill_with_constant_folds() {
    check_inflight("inflight+fold");
}

fn check_inflight(name: &str) {
    let dir = scenario(name);
    let dir = dir.path();
    let acks = acks(dir);
    let (jobs, history) = load_store(dir, &["b0".into(), "b1".into()]);
    diagnose(dir, &jobs);
    let act = starts(dir, "act");
    for i in 0..2 {
        let id = format!("b{i}");
        let (_, run_id) = &acks[&("pause".into(), id.clone())];
        let j = jobs.get(&id).unwrap_or_else(|| panic!("{id}: lost"));
        assert!(j.state.paused.is_some(), "{id}: the pause did not hold");
        let in_flight: Vec<String> = j
            .state
            .in_flight
            .iter()
            .map(|r| r.run_id.to_string())
            .collect();
        // In flight, or recorded interrupted by a restart killed early
        // whose recovery was flushed before the kill.
        let interrupted = history[&id].iter().any(|r| {
            r.run_id.to_string() == *run_id && r.outcome == cronactor::Outcome::Interrupted
        });
        assert!(
            in_flight == [run_id.clone()] || (in_flight.is_empty() && interrupted),
            "{id}: the run {run_id} neither in flight nor interrupted: {:?} {:?}",
            j.state,
            history[&id]
        );
        assert!(
            act.iter().any(|s| s.job == id && s.run_id == *run_id),
            "{id}: the run in flight had started"
        );
    }
    for i in 2..4 {
        let id = format!("b{i}");
        assert!(acks.contains_key(&("remove".into(), id.clone())));
        assert!(!jobs.contains_key(&id), "{id}: the removal did not hold");
    }
    let ack_of = |job: &str| {
        acks.get(&("pause".into(), job.into()))
            .or_else(|| acks.get(&("remove".into(), job.into())))
            .map(|a| a.0)
    };
    let late = starts_after_ack(&act, ack_of, false);
    assert!(late.is_empty(), "slots started after the Ok: {late:?}");

    restart(dir, name);
    let v = verified(dir);
    let ran = of(restarted(dir), &['b']);
    assert!(ran.is_empty(), "ran after the restart: {ran:?}");
    for i in 0..2 {
        let id = format!("b{i}");
        let (_, run_id) = &acks[&("pause".into(), id.clone())];
        let st = v.status[&id].as_ref().expect("status");
        assert_eq!(st.phase, cronactor::JobPhase::Paused, "{id}: {st:?}");
        assert_eq!(st.counters.interrupted, 1, "{id}: {:?}", st.counters);
        assert!(
            st.counters.skipped.paused >= 1,
            "{id}: the retry skipped: {:?}",
            st.counters
        );
        assert!(st.in_flight.is_empty(), "{id}: {st:?}");
        let h = &v.history[&id];
        assert!(
            h.iter()
                .any(|r| r.run_id.to_string() == *run_id
                    && r.outcome == cronactor::Outcome::Interrupted),
            "{id}: the interrupted run in {h:?}"
        );
    }
    for i in 2..4 {
        let id = format!("b{i}");
        assert!(v.status[&id].is_none(), "{id}: back after the restart");
    }
}

/// `pause_matching` of 2,000 busy jobs by tag, sent just before a slot;
/// SIGKILL right after its `Ok`: every job is paused in the store, none
/// started a slot after the `Ok`, none runs after the restart, and the
/// untagged job `open` still runs.
#[test]
fn bulk_pause_of_busy_jobs_holds_after_sigkill() {
    check_bulk("bulk");
}

/// As `bulk_pause_of_busy_jobs_holds_after_sigkill`, folding every 50 ms.
#[test]
#[ignore = "the longer crash audit: cargo test --all-features --test recovery_acknowledged -- --ignored"]
fn bulk_pause_of_busy_jobs_holds_after_sigkill_with_constant_folds() {
    check_bulk("bulk+fold");
}

fn check_bulk(name: &str) {
    let dir = scenario(name);
    let dir = dir.path();
    let acks = acks(dir);
    let (ack_ms, changed) = acks[&("bulk".into(), "busy".into())].clone();
    assert_eq!(changed, FILLERS.to_string(), "changed");
    let (jobs, _) = load_store(dir, &[]);
    diagnose(dir, &jobs);
    let not_paused: Vec<String> = (0..FILLERS)
        .map(filler)
        .filter(|id| jobs.get(id).is_none_or(|j| j.state.paused.is_none()))
        .collect();
    assert!(
        not_paused.is_empty(),
        "{} not paused: {:?}",
        not_paused.len(),
        &not_paused[..not_paused.len().min(10)]
    );
    assert!(jobs["open"].state.paused.is_none());
    let act = starts(dir, "act");
    let late = starts_after_ack(&act, |job| job.starts_with('f').then_some(ack_ms), false);
    assert!(
        late.is_empty(),
        "{} slots started after the Ok: {:?}",
        late.len(),
        &late[..late.len().min(10)]
    );

    restart(dir, name);
    let all = restarted(dir);
    let ran = of(all.clone(), &['f']);
    assert!(
        ran.is_empty(),
        "{} runs of paused jobs after the restart: {:?}",
        ran.len(),
        &ran[..ran.len().min(10)]
    );
    assert!(all.iter().any(|s| s.job == "open"), "the untagged job runs");
}

/// `backfill` of 20 past slots on busy jobs, in three waves; SIGKILL
/// right after the last answer: every backfilled slot runs, in the killed
/// process or after the restart (as `Backfill`, or as `Recovery` of one
/// interrupted), none is lost.
#[test]
fn backfill_of_busy_jobs_holds_after_sigkill() {
    let name = "backfill";
    let dir = scenario(name);
    let dir = dir.path();
    let acks = acks(dir);
    let (jobs, _) = load_store(dir, &[]);
    diagnose(dir, &jobs);
    restart(dir, name);
    let mut all = starts(dir, "act");
    all.extend(restarted(dir));
    for id in (0..TARGETS).map(target) {
        let (_, answer) = acks
            .get(&("backfill".into(), id.clone()))
            .unwrap_or_else(|| panic!("{id}: no ack"));
        let [n, from, to] = answer.split_whitespace().collect::<Vec<_>>()[..] else {
            panic!("{id}: {answer}");
        };
        let (n, from, to): (usize, i64, i64) = (
            n.parse().expect("n"),
            from.parse().expect("from"),
            to.parse().expect("to"),
        );
        assert_eq!(n, 20, "{id}: slots queued");
        let ran: BTreeSet<i64> = all
            .iter()
            .filter(|s| s.job == id && (s.trigger == "Backfill" || s.trigger == "Recovery"))
            .map(|s| s.scheduled_ms)
            .filter(|ms| *ms > from && *ms <= to)
            .collect();
        let missing: Vec<i64> = (1..=20)
            .map(|k| from + k * 1000)
            .filter(|ms| !ran.contains(ms))
            .collect();
        assert!(
            missing.is_empty(),
            "{id}: backfilled slots never ran: {missing:?}"
        );
    }
}

/// `trigger` of busy jobs (a prepared run withdrawn for it) in three
/// waves; SIGKILL right after the last `Started`: each run is in flight in
/// the store (or ended), and a run found in flight is recovered by the
/// restart.
#[test]
fn trigger_of_busy_jobs_holds_after_sigkill() {
    let name = "trigger";
    let dir = scenario(name);
    let dir = dir.path();
    let acks = acks(dir);
    let ids: Vec<String> = (0..TARGETS).map(target).collect();
    let (jobs, history) = load_store(dir, &ids);
    diagnose(dir, &jobs);
    let mut in_flight_at_kill = BTreeSet::new();
    for id in &ids {
        let (_, run_id) = acks
            .get(&("trigger".into(), id.clone()))
            .unwrap_or_else(|| panic!("{id}: no ack"));
        if run_id == "skipped" {
            continue;
        }
        let j = jobs.get(id).unwrap_or_else(|| panic!("{id}: lost"));
        let flying = j
            .state
            .in_flight
            .iter()
            .any(|r| r.run_id.to_string() == *run_id);
        let ended = history[id].iter().any(|r| r.run_id.to_string() == *run_id);
        assert!(
            flying || ended,
            "{id}: run {run_id} neither in flight nor ended: {:?}",
            j.state
        );
        if flying {
            in_flight_at_kill.insert(id.clone());
        }
    }
    restart(dir, name);
    let all = restarted(dir);
    for id in &in_flight_at_kill {
        assert!(
            all.iter().any(|s| &s.job == id && s.trigger == "Recovery"),
            "{id}: the triggered run in flight at the kill was not recovered"
        );
    }
}

/// Sequences on one job, acknowledged one after the other or sent
/// together, then SIGKILL right after the last `Ok`: pause, resume, pause
/// (paused, the last note); a pause and an upsert sent together (paused,
/// the new spec); an add and a pause the instant it answered, 15 ms before
/// the new job's first slot (paused, never runs after the pause's `Ok`); an
/// add then a remove (gone); pause, resume, pause, resume (runs).
#[test]
fn sequences_of_operations_on_busy_jobs_hold_after_sigkill() {
    let name = "mixed";
    let dir = scenario(name);
    let dir = dir.path();
    let acks = acks(dir);
    let (jobs, _) = load_store(dir, &[]);
    diagnose(dir, &jobs);
    let note = |id: &str| {
        let j = jobs.get(id).unwrap_or_else(|| panic!("{id}: lost"));
        j.state
            .paused
            .as_ref()
            .map(|p| p.note.clone().unwrap_or_default())
    };
    for i in 0..8 {
        let id = target(i);
        assert!(
            acks.contains_key(&("flap-paused".into(), id.clone())),
            "{id}"
        );
        assert_eq!(
            note(&id).as_deref(),
            Some("x2"),
            "{id}: pause, resume, pause"
        );
    }
    for i in 8..16 {
        let id = target(i);
        assert!(
            acks.contains_key(&("pause-upsert".into(), id.clone())),
            "{id}"
        );
        assert_eq!(
            note(&id).as_deref(),
            Some("pu"),
            "{id}: the pause sent with an upsert"
        );
        assert_eq!(gen_of(&jobs[&id]), 2, "{id}: the upsert sent with a pause");
    }
    for i in 16..24 {
        let id = target(i);
        assert!(
            acks.contains_key(&("flap-resumed".into(), id.clone())),
            "{id}"
        );
        assert_eq!(note(&id), None, "{id}: pause, resume, pause, resume");
    }
    for i in 0..8 {
        let id = format!("n{i:02}");
        assert!(acks.contains_key(&("add-pause".into(), id.clone())), "{id}");
        assert_eq!(note(&id).as_deref(), Some("new"), "{id}: add then pause");
    }
    for i in 8..16 {
        let id = format!("n{i:02}");
        assert!(
            acks.contains_key(&("add-remove".into(), id.clone())),
            "{id}"
        );
        assert!(!jobs.contains_key(&id), "{id}: add then remove");
    }
    let act = starts(dir, "act");
    let ack_of = |job: &str| {
        ["flap-paused", "pause-upsert", "add-pause", "add-remove"]
            .iter()
            .find_map(|op| acks.get(&(op.to_string(), job.to_string())))
            .map(|a| a.0)
    };
    let late = starts_after_ack(&act, ack_of, false);
    assert!(late.is_empty(), "slots started after the Ok: {late:?}");

    restart(dir, name);
    let v = verified(dir);
    let all = restarted(dir);
    let stopped: Vec<&Start> = all
        .iter()
        .filter(|s| s.job.starts_with('n') || (s.job.starts_with('t') && wave_of(&s.job) < 2))
        .collect();
    assert!(
        stopped.is_empty(),
        "paused or removed jobs ran after the restart: {stopped:?}"
    );
    for i in 16..24 {
        let id = target(i);
        let st = v.status[&id].as_ref().expect("status");
        assert_ne!(st.phase, cronactor::JobPhase::Paused, "{id}");
        assert!(
            starts(dir, "verify").iter().any(|s| s.job == id),
            "{id}: resumed, but did not run after the restart"
        );
    }
    for i in 8..16 {
        let id = format!("n{i:02}");
        assert!(v.status[&id].is_none(), "{id}: back after the restart");
    }
}

/// Jobs orphaned in the killed process (their handler not registered
/// there): paused, removed, or upserted with a registered handler and a new
/// payload, SIGKILL right after the last `Ok`. A restart that registers
/// their handler again finds them so: the paused ones do not run, the
/// removed ones are gone, the upserted ones run with the new payload.
#[test]
fn operations_on_orphaned_jobs_hold_after_sigkill() {
    let name = "orphan";
    let dir = scenario(name);
    let dir = dir.path();
    let acks = acks(dir);
    let (jobs, _) = load_store(dir, &[]);
    diagnose(dir, &jobs);
    for i in 0..8 {
        let id = target(i);
        assert!(acks.contains_key(&("pause".into(), id.clone())), "{id}");
        let j = jobs.get(&id).unwrap_or_else(|| panic!("{id}: lost"));
        assert!(j.state.paused.is_some(), "{id}: the pause did not hold");
    }
    for i in 8..16 {
        let id = target(i);
        assert!(acks.contains_key(&("remove".into(), id.clone())), "{id}");
        assert!(!jobs.contains_key(&id), "{id}: the removal did not hold");
    }
    for i in 16..24 {
        let id = target(i);
        assert!(acks.contains_key(&("upsert".into(), id.clone())), "{id}");
        let j = jobs.get(&id).unwrap_or_else(|| panic!("{id}: lost"));
        assert_eq!((gen_of(j), j.spec.handler.as_str()), (2, "log"), "{id}");
    }
    restart(dir, name);
    let v = verified(dir);
    let all = restarted(dir);
    let stopped: Vec<&Start> = all
        .iter()
        .filter(|s| s.job.starts_with('t') && wave_of(&s.job) < 2)
        .collect();
    assert!(
        stopped.is_empty(),
        "paused or removed jobs ran after the restart: {stopped:?}"
    );
    for i in 0..8 {
        let id = target(i);
        let st = v.status[&id].as_ref().expect("status");
        assert_eq!(st.phase, cronactor::JobPhase::Paused, "{id}: {st:?}");
    }
    for i in 16..24 {
        let id = target(i);
        let ran: Vec<&Start> = all.iter().filter(|s| s.job == id).collect();
        assert!(
            !ran.is_empty(),
            "{id}: upserted, but did not run after the restart"
        );
        assert!(
            ran.iter().all(|s| s.gen == 2),
            "{id}: the old spec ran: {ran:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// The child's side.

#[test]
#[ignore = "run by the other tests of this file in a child process"]
fn acknowledged_child() {
    let (Ok(scenario), Ok(phase), Ok(dir)) = (
        std::env::var(ENV_SCENARIO),
        std::env::var(ENV_PHASE),
        std::env::var(ENV_DIR),
    ) else {
        return;
    };
    let _ = CHILD_START.set(Instant::now());
    // Die with the parent test, however it ends.
    // SAFETY: plain FFI call with constant arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = PathBuf::from(dir);
    let answer = runtime.block_on(child_main(&scenario, &phase, &dir));
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(answer_path(&dir, &phase))
        .expect("answer file");
    out.write_all(answer.as_bytes()).expect("answer");
    // The instant after the last Ok: no destructor, no final flush.
    // SAFETY: plain FFI call on this process.
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    unreachable!("killed");
}

fn busy(id: &str, gen: u64) -> cronactor::JobSpecBuilder {
    cronactor::JobSpec::builder(id, cronactor::ScheduleSpec::cron("* * * * * *"), "log")
        .payload(serde_json::json!({ "gen": gen }))
}

/// A job every 3 s: with `passivate_after` 2 s and `wake_lead` 1 s, it
/// passivates after each run and wakes 1 s before the next.
fn every3(id: &str, gen: u64) -> cronactor::JobSpec {
    cronactor::JobSpec::builder(
        id,
        cronactor::ScheduleSpec::every(Duration::from_secs(3)),
        "log",
    )
    .payload(serde_json::json!({ "gen": gen }))
    .build()
    .expect("spec")
}

fn yearly(id: &str, gen: u64) -> cronactor::JobSpecBuilder {
    cronactor::JobSpec::builder(id, cronactor::ScheduleSpec::cron("0 0 0 1 1 *"), "log")
        .payload(serde_json::json!({ "gen": gen }))
}

/// Sleeps until the wall clock is `ms` into a second.
async fn at_offset(ms: u32) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock");
    let sub = now.subsec_millis();
    let wait = if sub < ms { ms - sub } else { 1000 - sub + ms };
    tokio::time::sleep(Duration::from_millis(u64::from(wait))).await;
}

async fn add_all(s: &cronactor::Scheduler, specs: Vec<cronactor::JobSpec>) {
    for chunk in specs.chunks(256) {
        let adds = chunk.iter().map(|spec| s.add(spec.clone()));
        for added in futures::future::join_all(adds).await {
            added.expect("add");
        }
    }
}

async fn add_paused_all(s: &cronactor::Scheduler, specs: Vec<cronactor::JobSpec>) {
    let adds = specs
        .into_iter()
        .map(|spec| s.add_paused(spec, Some("held")));
    for added in futures::future::join_all(adds).await {
        added.expect("add paused");
    }
}

fn fillers(tag: Option<&str>) -> Vec<cronactor::JobSpec> {
    (0..FILLERS)
        .map(|i| {
            let b = busy(&filler(i), 1);
            let b = match tag {
                Some(tag) => b.tag(tag),
                None => b,
            };
            b.build().expect("spec")
        })
        .collect()
}

/// Runs `op` on each id of `ids` at once; each `Ok` is logged with its
/// instant and what `op` answers.
async fn wave<'a, F, Fut>(lines: &mut Vec<String>, name: &str, ids: &'a [String], op: F)
where
    F: Fn(&'a str) -> Fut,
    Fut: std::future::Future<Output = Result<String, cronactor::Error>>,
{
    let calls = ids.iter().map(|id| {
        let fut = op(id.as_str());
        async move { (id, fut.await, now_ms()) }
    });
    for (id, result, ms) in futures::future::join_all(calls).await {
        let extra = result.unwrap_or_else(|e| panic!("{name} {id}: {e}"));
        lines.push(format!("ack {name} {id} {ms} {extra}"));
    }
}

async fn child_main(scenario: &str, phase: &str, dir: &Path) -> String {
    use cronactor::{JobContext, Scheduler};
    use std::sync::Arc;

    // `name+fold`: the store folds its journal every 50 ms instead of 10 s.
    let fold = scenario.ends_with("+fold");
    let scenario = scenario.trim_end_matches("+fold");

    let starts = Arc::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(starts_path(dir, phase))
            .expect("starts file"),
    );
    let log_start = |starts: &std::fs::File, ctx: &JobContext| {
        let gen = ctx.payload.get("gen").and_then(|g| g.as_u64()).unwrap_or(0);
        let line = format!(
            "{} {} {:?} {} {} {}\n",
            ctx.job_id,
            ctx.scheduled.timestamp_millis(),
            ctx.trigger,
            gen,
            now_ms(),
            ctx.run_id
        );
        // One write each: the kernel keeps it when the process is killed.
        let mut f = starts;
        f.write_all(line.as_bytes())
    };
    let (log_file, block_file) = (starts.clone(), starts.clone());
    let started_blocks = Arc::new(std::sync::Mutex::new(BTreeMap::<String, String>::new()));
    let blocks = started_blocks.clone();
    let mut builder = Scheduler::builder()
        .handler("log", move |ctx: JobContext| {
            let f = log_file.clone();
            async move {
                log_start(&f, &ctx)?;
                Ok::<(), std::io::Error>(())
            }
        })
        .handler("block", move |ctx: JobContext| {
            let f = block_file.clone();
            let blocks = blocks.clone();
            async move {
                log_start(&f, &ctx)?;
                blocks
                    .lock()
                    .expect("lock")
                    .insert(ctx.job_id.to_string(), ctx.run_id.to_string());
                ctx.cancel.cancelled().await;
                Ok::<(), std::io::Error>(())
            }
        });
    // Handler `old`: missing in the orphan scenario's act phase (its jobs
    // are orphaned there), registered again at the restarts after it.
    if !(scenario == "orphan" && phase == "act") {
        let f = starts.clone();
        builder = builder.handler("old", move |ctx: JobContext| {
            let f = f.clone();
            async move {
                log_start(&f, &ctx)?;
                Ok::<(), std::io::Error>(())
            }
        });
    }
    builder = if fold {
        let options =
            cronactor::store::SledStoreOptions::default().fold_interval(Duration::from_millis(50));
        let store = SledStore::open_with(store_dir(dir), options).expect("open the store");
        builder.store(Arc::new(store))
    } else {
        builder.store_path(store_dir(dir))
    };
    if scenario == "passive" {
        builder = builder.configure(|c| {
            c.passivate_after = Some(Duration::from_secs(2));
            c.wake_lead = Duration::from_secs(1);
        });
    }
    let s = builder
        .start()
        .await
        .expect("the store opens after a SIGKILL");
    let mut lines = Vec::new();
    if phase != "act" {
        eprintln!(
            "[{scenario}/{phase}] started in {:?}",
            CHILD_START.get().map(|t| t.elapsed())
        );
    }

    if phase == "reboot" || phase.starts_with("early") {
        // What the recovery writes at the start, then a kill.
        tokio::time::sleep(Duration::from_millis(100)).await;
        return String::new();
    }
    if phase == "verify" {
        let watch = if scenario == "passive" { 5 } else { 3 };
        tokio::time::sleep(Duration::from_secs(watch)).await;
        for st in s.list().await.expect("list") {
            lines.push(format!(
                "status {} {}",
                st.id,
                serde_json::to_string(&st).expect("json")
            ));
            if !st.id.as_str().starts_with('f') {
                let h = s.history(st.id.as_str(), 100).await.expect("history");
                lines.push(format!(
                    "history {} {}",
                    st.id,
                    serde_json::to_string(&h).expect("json")
                ));
            }
        }
        // Audited ids that the list no longer has.
        let known: BTreeSet<String> = lines
            .iter()
            .filter_map(|l| l.strip_prefix("status "))
            .filter_map(|l| l.split(' ').next())
            .map(str::to_owned)
            .collect();
        let audited = (0..TARGETS)
            .map(target)
            .chain((0..4).map(|i| format!("b{i}")))
            .chain((0..100).map(|i| format!("p{i:03}")))
            .chain((0..20).map(|i| format!("y{i:02}")))
            .chain((0..20).map(|i| format!("r{i:02}")))
            .chain((0..16).map(|i| format!("n{i:02}")))
            .chain((0..FILLERS).map(|i| format!("a{i:04}")));
        for id in audited {
            if !known.contains(&id) {
                lines.push(format!("unknown {id}"));
            }
        }
        return lines.join("\n") + "\n";
    }

    let waves: Vec<(Vec<String>, u32, &str)> = WAVES
        .iter()
        .enumerate()
        .map(|(w, &(offset, tag))| {
            (
                (w * WAVE..(w + 1) * WAVE).map(target).collect(),
                offset,
                tag,
            )
        })
        .collect();
    let targets = |gen| -> Vec<cronactor::JobSpec> {
        (0..TARGETS)
            .map(|i| busy(&target(i), gen).build().expect("spec"))
            .collect()
    };
    let scenario = if phase == "seed" { "seed" } else { scenario };
    match scenario {
        "pause" | "remove" | "update" | "readd" | "trigger" | "backfill" => {
            add_all(&s, fillers(None)).await;
            add_all(&s, targets(1)).await;
            tokio::time::sleep(Duration::from_millis(2500)).await;
            for (ids, offset, tag) in &waves {
                let (offset, tag) = (*offset, *tag);
                at_offset(offset).await;
                let s = &s;
                match scenario {
                    "pause" => {
                        let note = format!("wave-{tag}");
                        let note = note.as_str();
                        wave(&mut lines, "pause", ids, |id| async move {
                            s.pause(id, Some(note)).await.map(|()| String::new())
                        })
                        .await
                    }
                    "remove" if tag == "c" => {
                        wave(&mut lines, "remove", ids, |id| async move {
                            match s.try_remove(id).await? {
                                true => Ok(String::new()),
                                false => panic!("try_remove {id}: there was none"),
                            }
                        })
                        .await
                    }
                    "remove" => {
                        wave(&mut lines, "remove", ids, |id| async move {
                            s.remove(id).await.map(|()| String::new())
                        })
                        .await
                    }
                    "update" => {
                        let gen = 2 + WAVES.iter().position(|w| w.1 == tag).unwrap_or(0) as u64;
                        wave(&mut lines, "update", ids, |id| async move {
                            let spec = yearly(id, gen).build().expect("spec");
                            s.upsert(spec).await.map(|u| format!("{u:?}"))
                        })
                        .await
                    }
                    "readd" => {
                        let sent = now_ms();
                        for id in ids {
                            lines.push(format!("ack sent {id} {sent} "));
                        }
                        let gen = 2 + WAVES.iter().position(|w| w.1 == tag).unwrap_or(0) as u64;
                        if tag == "a" {
                            wave(&mut lines, "add", ids, |id| async move {
                                s.remove(id).await?;
                                s.add(busy(id, gen).build().expect("spec"))
                                    .await
                                    .map(|()| String::new())
                            })
                            .await
                        } else if tag == "b" {
                            wave(&mut lines, "add", ids, |id| async move {
                                let spec = busy(id, gen).build().expect("spec");
                                let (removed, added) = tokio::join!(s.remove(id), s.add(spec));
                                removed?;
                                added.map(|()| String::new())
                            })
                            .await
                        } else {
                            // An upsert of the id sent right behind the
                            // remove: carried out after the removal (an add).
                            wave(&mut lines, "add", ids, |id| async move {
                                let spec = busy(id, gen).build().expect("spec");
                                let (removed, upserted) =
                                    tokio::join!(s.remove(id), s.upsert(spec));
                                removed?;
                                upserted.map(|u| format!("{u:?}"))
                            })
                            .await
                        }
                    }
                    "backfill" => {
                        // The 20 slots of a past range, whole seconds.
                        let to = (now_ms() / 1000 - 10) * 1000;
                        let from = to - 20_000;
                        let at = |ms: i64| {
                            chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
                                .expect("instant")
                        };
                        wave(&mut lines, "backfill", ids, |id| async move {
                            s.backfill(id, at(from), at(to))
                                .await
                                .map(|n| format!("{n} {from} {to}"))
                        })
                        .await
                    }
                    "trigger" => {
                        wave(&mut lines, "trigger", ids, |id| async move {
                            match s.trigger(id).await? {
                                cronactor::TriggerOutcome::Started(run_id) => {
                                    Ok(run_id.to_string())
                                }
                                // The slot's prepared run had started (wave c).
                                cronactor::TriggerOutcome::Skipped(
                                    cronactor::SkipReason::Overlap,
                                ) => Ok("skipped".into()),
                                other => panic!("trigger {id}: {other:?}"),
                            }
                        })
                        .await
                    }
                    _ => unreachable!(),
                }
            }
        }
        "mixed" => {
            add_all(&s, fillers(None)).await;
            add_all(&s, targets(1)).await;
            tokio::time::sleep(Duration::from_millis(2500)).await;
            let s = &s;
            let t = |r: std::ops::Range<usize>| -> Vec<String> { r.map(target).collect() };
            let n = |r: std::ops::Range<usize>| -> Vec<String> {
                r.map(|i| format!("n{i:02}")).collect()
            };
            at_offset(600).await;
            // Pause, resume, pause, one after the other: paused, note x2.
            wave(&mut lines, "flap-paused", &t(0..8), |id| async move {
                s.pause(id, Some("x1")).await?;
                s.resume(id, None).await?;
                s.pause(id, Some("x2")).await.map(|()| String::new())
            })
            .await;
            // A pause and an upsert sent together: paused, with the new spec.
            wave(&mut lines, "pause-upsert", &t(8..16), |id| async move {
                let spec = busy(id, 2).build().expect("spec");
                let (paused, upserted) = tokio::join!(s.pause(id, Some("pu")), s.upsert(spec));
                paused?;
                upserted.map(|u| format!("{u:?}"))
            })
            .await;
            at_offset(985).await;
            // A new job paused (or removed) the instant its add answered,
            // its first slot 15 ms away.
            wave(&mut lines, "add-pause", &n(0..8), |id| async move {
                s.add(busy(id, 1).build().expect("spec")).await?;
                s.pause(id, Some("new")).await.map(|()| String::new())
            })
            .await;
            wave(&mut lines, "add-remove", &n(8..16), |id| async move {
                s.add(busy(id, 1).build().expect("spec")).await?;
                s.remove(id).await.map(|()| String::new())
            })
            .await;
            at_offset(2).await;
            // Pause, resume, pause, resume: running.
            wave(&mut lines, "flap-resumed", &t(16..24), |id| async move {
                s.pause(id, Some("z1")).await?;
                s.resume(id, None).await?;
                s.pause(id, Some("z2")).await?;
                s.resume(id, None).await.map(|()| String::new())
            })
            .await;
        }
        "orphan" => {
            // The seed phase added the targets with handler `old`, missing
            // here: they are orphaned.
            add_all(&s, fillers(None)).await;
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let s = &s;
            let t = |r: std::ops::Range<usize>| -> Vec<String> { r.map(target).collect() };
            at_offset(985).await;
            wave(&mut lines, "pause", &t(0..8), |id| async move {
                s.pause(id, Some("orphan")).await.map(|()| String::new())
            })
            .await;
            wave(&mut lines, "remove", &t(8..16), |id| async move {
                s.remove(id).await.map(|()| String::new())
            })
            .await;
            wave(&mut lines, "upsert", &t(16..24), |id| async move {
                // Now with a registered handler: runs again, new payload.
                let spec = busy(id, 2).build().expect("spec");
                s.upsert(spec).await.map(|u| format!("{u:?}"))
            })
            .await;
        }
        "seed" => {
            let old: Vec<cronactor::JobSpec> = (0..TARGETS)
                .map(|i| {
                    cronactor::JobSpec::builder(
                        target(i),
                        cronactor::ScheduleSpec::cron("* * * * * *"),
                        "old",
                    )
                    .payload(serde_json::json!({ "gen": 1 }))
                    .build()
                    .expect("spec")
                })
                .collect();
            add_all(&s, old).await;
            tokio::time::sleep(Duration::from_millis(1500)).await;
            lines.push(format!("ack seeded all {} ", now_ms()));
        }
        "resume" => {
            add_all(&s, fillers(None)).await;
            add_paused_all(&s, targets(1)).await;
            tokio::time::sleep(Duration::from_millis(2500)).await;
            for (ids, offset, _) in &waves {
                let offset = *offset;
                at_offset(offset).await;
                let s = &s;
                wave(&mut lines, "resume", ids, |id| async move {
                    s.resume(id, None).await.map(|()| String::new())
                })
                .await;
            }
        }
        "adds-mid" | "adds-end" => {
            // Some load first: the adds meet claims being written.
            let load: Vec<cronactor::JobSpec> = (0..500)
                .map(|i| busy(&filler(i), 1).build().expect("spec"))
                .collect();
            add_all(&s, load).await;
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let acks = Arc::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(answer_path(dir, phase))
                    .expect("answer file"),
            );
            let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let kill_at = if scenario == "adds-mid" {
                1_000
            } else {
                FILLERS
            };
            let adds = (0..FILLERS).map(|i| {
                let (s, acks, count) = (s.clone(), acks.clone(), count.clone());
                tokio::spawn(async move {
                    let id = format!("a{i:04}");
                    s.add(busy(&id, 1).build().expect("spec"))
                        .await
                        .unwrap_or_else(|e| panic!("add {id}: {e}"));
                    let line = format!("ack add {id} {} \n", now_ms());
                    (&*acks).write_all(line.as_bytes()).expect("ack line");
                    if count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == kill_at {
                        // SAFETY: plain FFI call on this process.
                        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
                    }
                })
            });
            let adds: Vec<_> = adds.collect();
            for add in adds {
                add.await.expect("add task");
            }
            unreachable!("killed after the last add");
        }
        "passive" => {
            let load: Vec<cronactor::JobSpec> = (0..500)
                .map(|i| busy(&filler(i), 1).build().expect("spec"))
                .collect();
            add_all(&s, load).await;
            let p: Vec<cronactor::JobSpec> =
                (0..100).map(|i| every3(&format!("p{i:03}"), 1)).collect();
            add_all(&s, p).await;
            let y: Vec<cronactor::JobSpec> = (0..20)
                .map(|i| yearly(&format!("y{i:02}"), 1).build().expect("spec"))
                .collect();
            add_all(&s, y).await;
            let r: Vec<cronactor::JobSpec> =
                (0..20).map(|i| every3(&format!("r{i:02}"), 1)).collect();
            add_all(&s, r).await;
            tokio::time::sleep(Duration::from_millis(4300)).await;
            // One operation every 20 ms over 2.8 s (a period of the jobs
            // that passivate), each on its own: they meet the jobs live,
            // passive, being passivated and being woken.
            let mut ops: Vec<(&str, String)> = Vec::new();
            for i in 0..60 {
                let (p, y) = (i % 50, i / 50);
                let _ = y;
                if i < 50 {
                    ops.push(("pause", format!("p{p:03}")));
                    ops.push(("remove", format!("p{:03}", 50 + p)));
                } else {
                    ops.push(("pause", format!("y{:02}", i - 50)));
                    ops.push(("remove", format!("y{:02}", i - 40)));
                }
            }
            for i in 0..20 {
                ops.insert(i * 7, ("readd", format!("r{i:02}")));
            }
            let s = &s;
            let calls = ops.iter().enumerate().map(|(k, (op, id))| async move {
                tokio::time::sleep(Duration::from_millis(20 * k as u64)).await;
                let sent = now_ms();
                let result = match *op {
                    "pause" => s.pause(id, Some("passive")).await,
                    "remove" => s.remove(id).await,
                    _ => {
                        let (removed, upserted) =
                            tokio::join!(s.remove(id), s.upsert(every3(id, 2)));
                        removed.and(upserted.map(|_| ()))
                    }
                };
                result.unwrap_or_else(|e| panic!("{op} {id}: {e}"));
                (*op, id, sent, now_ms())
            });
            for (op, id, sent, ms) in futures::future::join_all(calls).await {
                lines.push(format!("ack sent {id} {sent} "));
                lines.push(format!("ack {op} {id} {ms} "));
            }
        }
        "inflight" => {
            add_all(&s, fillers(None)).await;
            let b: Vec<cronactor::JobSpec> = (0..4)
                .map(|i| {
                    cronactor::JobSpec::builder(
                        format!("b{i}"),
                        cronactor::ScheduleSpec::cron("* * * * * *"),
                        "block",
                    )
                    .build()
                    .expect("spec")
                })
                .collect();
            add_all(&s, b).await;
            let deadline = Instant::now() + Duration::from_secs(30);
            while started_blocks.lock().expect("lock").len() < 4 {
                assert!(Instant::now() < deadline, "the blocking runs did not start");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // Their claims and starts group-committed.
            tokio::time::sleep(Duration::from_millis(1300)).await;
            at_offset(985).await;
            let runs = started_blocks.lock().expect("lock").clone();
            let pause: Vec<String> = (0..2).map(|i| format!("b{i}")).collect();
            let remove: Vec<String> = (2..4).map(|i| format!("b{i}")).collect();
            let s = &s;
            let runs = &runs;
            let mut paused = Vec::new();
            let mut removed = Vec::new();
            tokio::join!(
                wave(&mut paused, "pause", &pause, |id| async move {
                    s.pause(id, None).await.map(|()| runs[id].clone())
                }),
                wave(&mut removed, "remove", &remove, |id| async move {
                    s.remove(id).await.map(|()| String::new())
                }),
            );
            lines.extend(paused);
            lines.extend(removed);
        }
        "bulk" => {
            add_all(&s, fillers(Some("busy"))).await;
            add_all(&s, vec![busy("open", 1).build().expect("spec")]).await;
            tokio::time::sleep(Duration::from_millis(2500)).await;
            at_offset(970).await;
            let report = s
                .pause_matching(&cronactor::JobSelector::tag("busy"), Some("bulk"))
                .await
                .expect("bulk pause");
            lines.push(format!(
                "ack bulk busy {} {}",
                now_ms(),
                report.changed.len()
            ));
        }
        other => panic!("unknown scenario {other}"),
    }
    lines.join("\n") + "\n"
}
