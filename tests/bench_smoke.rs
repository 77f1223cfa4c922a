//! The benchmark binary (`examples/bench.rs`) runs every workload with a tiny
//! N and prints valid JSON lines. Figures come from the binary itself; this
//! test makes no timing assertions.

#[allow(dead_code)]
#[path = "../examples/bench.rs"]
mod bench;

use serde_json::Value;

fn run(args: &[&str]) -> Vec<Value> {
    let args: Vec<String> = args.iter().map(|a| (*a).to_string()).collect();
    let mut lines = Vec::new();
    bench::run(&args, &mut |line| lines.push(line))
        .unwrap_or_else(|e| panic!("bench {args:?} failed: {e}"));
    assert!(!lines.is_empty(), "bench {args:?} printed nothing");
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// A fresh directory for a sled store, removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "cronactor-bench-smoke-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }
    fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temp path")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn has(line: &Value, workload: &str, fields: &[&str]) {
    assert_eq!(line["workload"], workload, "{line}");
    for f in fields {
        assert!(line.get(f).is_some(), "field {f} missing in {line}");
    }
}

const FIRE_FIELDS: &[&str] = &[
    "fires",
    "expected_fires",
    "missed_pct",
    "lateness_us_p50",
    "lateness_us_p99",
    "lateness_us_max",
    "lateness_us_p99_by_second",
    "lateness_us_p99_second_median",
    "window_cpu_user_s",
    "window_cpu_sys_s",
    "max_rss_mib",
    "register_ms",
    "add_us_p99",
    "add_us_max",
    "control_calls",
    "control_us_p50",
    "control_us_p99",
    "control_us_max",
];

/// `fire` with 20 jobs for one second, plus `extra` options; its line.
fn fire(extra: &[&str]) -> Value {
    let mut args = vec!["fire", "--jobs", "20", "--seconds", "1", "--grace", "1"];
    args.extend_from_slice(extra);
    let line = run(&args).swap_remove(0);
    has(&line, "fire", FIRE_FIELDS);
    assert_eq!(line["expected_fires"], 20);
    line
}

#[test]
fn fire_in_memory() {
    let line = fire(&[]);
    assert_eq!(line["store"], "memory");
    // The control probe paused then resumed its own job through the
    // window (every 100 ms of 1 s), and that job's fires were not credited
    // (`expected_fires` is the 20 jobs', checked by `fire`).
    let calls = line["control_calls"].as_u64().expect("control_calls");
    assert!(calls >= 2 && calls.is_multiple_of(2), "{line}");
    assert!(line["control_us_p50"].as_u64().is_some(), "{line}");
    assert!(line["add_us_max"].as_u64().is_some(), "{line}");
    assert_eq!(line["pin_workers"], 0);
    assert_eq!(line["log"], "none");
    // One window second: its p99 is the list's only entry and the median.
    let by_second = line["lateness_us_p99_by_second"]
        .as_array()
        .expect("a list by second");
    assert_eq!(by_second.len(), 1, "{line}");
    let p99 = by_second[0].as_u64().expect("the second's p99");
    assert_eq!(line["lateness_us_p99_second_median"], p99, "{line}");
    // Two significant digits against the run's three.
    let run_p99 = line["lateness_us_p99"].as_u64().expect("p99") as f64;
    assert!(
        (p99 as f64 - run_p99).abs() <= run_p99 * 0.02 + 1.0,
        "{line}"
    );
}

#[test]
fn fire_with_a_log_subscriber() {
    // The only test of this process that installs a global subscriber.
    assert_eq!(fire(&["--log", "info"])["log"], "info");
}

#[test]
fn fire_with_pinned_workers() {
    assert_eq!(fire(&["--pin-workers"])["pin_workers"], 1);
    // Other workloads do not take it.
    let mut sink = |_: String| {};
    let args = ["register", "--jobs", "5", "--pin-workers"].map(String::from);
    assert!(bench::run(&args, &mut sink).is_err());
}

#[test]
fn fire_with_the_sled_store() {
    let dir = TempDir::new("fire");
    let line = fire(&["--store", dir.path()]);
    assert_eq!(line["store"], "sled");
    // The store's settings that change the figures are reported.
    assert_eq!(line["fold_ms"], 10_000);
    assert_eq!(line["history_keep"], 100);
}

#[test]
fn register_in_memory_and_with_the_store() {
    let fields = &[
        "register_ms",
        "register_us_per_job",
        "bytes_per_job",
        "max_rss_mib",
    ];
    has(&run(&["register", "--jobs", "50"])[0], "register", fields);
    let dir = TempDir::new("register");
    let lines = run(&["register", "--jobs", "50", "--store", dir.path()]);
    has(&lines[0], "register", fields);
    assert_eq!(lines[0]["store"], "sled");
}

#[test]
fn recover_prepares_then_measures() {
    let dir = TempDir::new("recover");
    let prepared = run(&[
        "recover",
        "--jobs",
        "30",
        "--store",
        dir.path(),
        "--prepare",
    ]);
    has(&prepared[0], "recover-prepare", &["prepare_ms"]);
    let lines = run(&["recover", "--jobs", "30", "--store", dir.path()]);
    has(&lines[0], "recover", &["recover_ms", "start_returned_ms"]);
    assert_eq!(lines[0]["jobs"], 30);
}

#[test]
fn persist_reports_store_throughput_and_lag() {
    let dir = TempDir::new("persist");
    let lines = run(&[
        "persist",
        "--jobs",
        "20",
        "--seconds",
        "1",
        "--every-ms",
        "200",
        "--store",
        dir.path(),
    ]);
    has(
        &lines[0],
        "persist",
        &["state_updates_per_s", "flushes_per_s", "store_lag_us_p99"],
    );
}

#[test]
fn soak_prints_one_line_per_interval_and_a_summary() {
    let lines = run(&[
        "soak",
        "--jobs",
        "20",
        "--seconds",
        "2",
        "--interval-s",
        "1",
        "--history-keep",
        "10",
        "--fire-ahead-ms",
        "200",
    ]);
    assert_eq!(lines.len(), 3, "{lines:?}");
    let interval = ["rss_mib", "rss_low_mib", "rss_high_mib", "cpu_s", "fires"];
    for line in &lines[..2] {
        has(line, "soak-interval", &interval);
        // The interval's range holds its reading at the end.
        let (low, rss, high) = (
            line["rss_low_mib"].as_f64().unwrap(),
            line["rss_mib"].as_f64().unwrap(),
            line["rss_high_mib"].as_f64().unwrap(),
        );
        assert!(0.0 < low && low <= rss && rss <= high, "{line}");
    }
    has(
        &lines[2],
        "soak",
        &[
            "rss_growth_after_first_interval_pct",
            "rss_low_growth_after_first_interval_pct",
            "rss_high_growth_after_first_interval_pct",
            "cpu_per_s_last_interval",
        ],
    );
    assert_eq!(lines[2]["history_keep"], 10);
    assert_eq!(lines[2]["fire_ahead_ms"], 200);
}

#[test]
fn next_fire() {
    let lines = run(&["next-fire", "--iters", "1000"]);
    has(&lines[0], "next-fire", &["ops", "ops_per_s", "ns_per_op"]);
    // Every line says which allocator the binary was built with.
    let built = if cfg!(feature = "mimalloc") {
        "mimalloc"
    } else {
        "system"
    };
    assert_eq!(lines[0]["allocator"], built, "{}", lines[0]);
}

#[test]
fn unknown_workloads_and_options_are_errors() {
    let mut sink = |_line: String| {};
    assert!(bench::run(&["nope".to_string()], &mut sink).is_err());
    let args = ["fire".to_string(), "--bogus".to_string(), "1".to_string()];
    assert!(bench::run(&args, &mut sink).is_err());
}

#[test]
fn passivate_reports_memory_live_and_passive_jobs_and_fires() {
    // Slots spread over 3 s of the hour starting 2 s from now, jobs passive
    // past 1 s from their fire: some passivate, and are woken to fire.
    let lines = run(&[
        "passivate",
        "--jobs",
        "40",
        "--seconds",
        "3",
        "--settle-s",
        "0",
        "--spread-s",
        "3",
        "--lead-s",
        "2",
        "--passivate-after-ms",
        "1000",
        "--wake-lead-ms",
        "500",
    ]);
    has(
        &lines[0],
        "passivate",
        &[
            "register_ms",
            "bytes_per_job",
            "max_rss_mib",
            "jobs_live_after_register",
            "jobs_passive_after_register",
            "fires",
            "expected_fires",
            "missed_fires",
            "lateness_us_p50",
            "lateness_us_p99",
            "lateness_us_max",
        ],
    );
    assert_eq!(lines[0]["jobs"], 40);
}
